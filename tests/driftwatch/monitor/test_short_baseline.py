"""Issue 16 through the Monitor: a fresh stream is watched from its first observations, and the
alert says how short its baseline was."""

from __future__ import annotations

import random

from driftwatch import Config, Monitor, Outcome


def test_a_fresh_stream_is_paged_and_the_alert_names_its_short_baseline() -> None:
    rng = random.Random(16)
    monitor = Monitor(Config(signals=["success"], console=False), threaded=False)
    alerts = []
    for i in range(300):
        rate = 0.9 if i < 40 else 0.2
        alerts += monitor.process(Outcome(task="fresh", time=float(i), success=rng.random() < rate))
    drift = [a for a in alerts if a.kind == "drift"]
    assert [a.status for a in drift][:2] == ["suspected", "confirmed"]
    suspected = drift[0]
    assert suspected.direction == "down" and 40 <= suspected.detected_at < 80
    assert suspected.detector["phase"] == "self-starting"
    n = suspected.detector["baseline_n"]
    assert 20 <= n <= 60 and f"against a baseline from {n} observations (self-starting)" in suspected.message
    assert drift[1].detected_at < 150


def test_a_pass_rate_that_falls_to_zero_and_stays_there_is_paged_once() -> None:
    """0.85 -> 0% for 3,000 outcomes: one page, no second "0.0% -> 0.0%" page superseding it."""
    rng = random.Random(3)
    monitor = Monitor(Config(signals=["success"], console=False), threaded=False)
    alerts = []
    for i in range(4000):
        success = i < 600 and rng.random() < 0.85
        alerts += monitor.process(Outcome(task="fell", time=float(i), success=success))
    drift = [a for a in alerts if a.kind == "drift"]
    assert [a.status for a in drift] == ["suspected", "confirmed"]
    assert drift[1].direction == "down" and 600 <= drift[1].detected_at < 700
