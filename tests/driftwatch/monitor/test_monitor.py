"""The monitor: routing by stream, two-stage alerts with BH across candidates, bounded queue, drops."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Any

from driftwatch import Alert, Config, InMemorySink, Monitor, Outcome
from driftwatch._monitor.fdr import Fdr
from driftwatch._monitor.watch import _SignalWatch


def run(monitor: Monitor, rates: list[tuple[float, int]], seed: int = 5, task: str = "fix") -> list[Alert]:
    rng = random.Random(seed)
    alerts: list[Alert] = []
    i = 0
    for rate, count in rates:
        for _ in range(count):
            i += 1
            alerts += monitor.process(Outcome(task=task, time=float(i), success=rng.random() < rate))
    return alerts


def test_degradation_is_suspected_then_confirmed_with_evidence() -> None:
    """A pass-rate drop raises `suspected` then `confirmed` with one id and the Alert JSON fields."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    alerts = run(monitor, [(0.8, 800), (0.5, 600)])
    # Any earlier suspicion (a false alarm in ~5% of seeds, or the change seen on too few fresh
    # observations) is withdrawn: suspected then resolved, under its own id.
    confirmed = next(a for a in alerts if a.status == "confirmed")
    suspected = next(a for a in alerts if a.id == confirmed.id)
    # (A confirmed level estimated far off the true one can be superseded by the level found later.)
    assert [a.status for a in alerts if a.id == confirmed.id][:2] == ["suspected", "confirmed"]
    others = [a for a in alerts if a.id != confirmed.id and "partial_recovery_of" not in a.extra]
    assert all(a.status in ("suspected", "resolved") for a in others)
    assert suspected.id == confirmed.id and confirmed.direction == "down"
    assert suspected.p_value is None  # the detection window cannot test itself
    # Sequential stage two: the anytime p-value 1 / likelihood ratio is at most confirm_alpha.
    assert confirmed.p_value is not None and confirmed.p_value <= monitor.config.confirm_alpha
    n = confirmed.extra["fresh_n"]
    assert f"confirmed on {n} fresh observations (sequential mixture likelihood ratio" in confirmed.message
    assert (
        confirmed.extra["confirm_test"] == "sequential-mixture" and confirmed.extra["decision"] == "confirm"
    )
    assert "test" not in confirmed.extra  # that key marks the synthetic alert of `driftwatch alert test`
    # The decision's event time: n fresh observations after the alarm (one outcome per time unit).
    assert confirmed.extra["confirmed_at"] == confirmed.detected_at + n
    assert confirmed.baseline.ci_low < confirmed.baseline.mean < confirmed.baseline.ci_high
    assert confirmed.current.mean < 0.65 and confirmed.effect < 0
    data = confirmed.to_dict()
    for key in (
        "id",
        "status",
        "stream",
        "signal",
        "direction",
        "detected_at",
        "change_at",
        "baseline",
        "current",
        "effect",
        "p_value",
        "detector",
        "message",
        "confirmed_at",
    ):
        assert key in data
    assert data["stream"] == {"service": "unknown_service", "task": "fix"}
    assert 700 <= confirmed.change_at <= confirmed.detected_at <= 1400


def test_streams_are_separate() -> None:
    """A degrading stream alerts while a healthy stream beside it does not."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    rng = random.Random(9)
    alerts: list[Alert] = []
    for i in range(1400):
        bad = 0.8 if i < 800 else 0.5
        alerts += monitor.process(Outcome(task="bad", time=float(i), success=rng.random() < bad))
        alerts += monitor.process(Outcome(task="good", time=float(i), success=rng.random() < 0.8))
    assert {a.stream["task"] for a in alerts if a.status == "confirmed"} == {"bad"}


def test_full_queue_drops_and_counts_without_blocking() -> None:
    """When detection falls behind, submit() drops and counts instead of blocking the agent."""
    gate = threading.Event()

    class SlowSink:
        def record_outcome(self, outcome: Outcome, stream: dict[str, str]) -> None:
            gate.wait(5)

        def export(self, alert: Alert) -> None:
            pass

        def shutdown(self) -> None:
            pass

    monitor = Monitor(Config(queue_size=5), [SlowSink()])
    results = [monitor.submit(Outcome(task="t", success=True)) for _ in range(50)]
    assert results.count(False) >= 40
    assert monitor.stats.dropped_queue_full == results.count(False)
    gate.set()
    monitor.shutdown()


def test_stream_cap_counts_new_streams() -> None:
    """Streams beyond max_streams are dropped and counted, never growing memory without bound."""
    monitor = Monitor(Config(max_streams=3), threaded=False)
    for i in range(10):
        monitor.process(Outcome(task=f"t{i}", success=True))
    assert monitor.stream_count == 3 and monitor.stats.dropped_stream_cap == 7


def test_failing_sink_is_swallowed_and_counted() -> None:
    """A sink that raises does not stop detection or other sinks."""

    class Broken:
        def export(self, alert: Alert) -> None:
            raise RuntimeError("sink down")

        def shutdown(self) -> None:
            pass

    memory = InMemorySink()
    monitor = Monitor(Config(signals=["success"]), [Broken(), memory], threaded=False)
    run(monitor, [(0.8, 800), (0.5, 600)])
    assert memory.alerts and monitor.stats.sink_errors >= len(memory.alerts)


def test_process_never_raises() -> None:
    """A malformed outcome is counted as an internal error, not raised."""
    monitor = Monitor(Config(stream_labels=["language"]), threaded=False)
    bad: Any = Outcome(task="t")
    bad.labels = None
    assert monitor.process(bad) == []
    assert monitor.stats.internal_errors == 1


def test_a_lone_candidate_is_tested_at_confirm_alpha() -> None:
    """Without concurrent candidates, BH reduces to the plain test: m = 1, rank 1."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    confirmed = [a for a in run(monitor, [(0.8, 800), (0.5, 600)]) if a.status == "confirmed"]
    assert [(a.extra["bh_m"], a.extra["bh_rank"]) for a in confirmed] == [(1, 1)]


def test_concurrent_candidates_share_benjamini_hochberg() -> None:
    """Open candidates count with p = 1, candidates decided since with their p; the rest are left out."""
    config = Config(confirm_alpha=0.01)
    fdr = Fdr(config)
    a, b, c, d = (_SignalWatch("binary", config) for _ in range(4))
    fdr.open_candidate(a)
    fdr.open_candidate(b)
    # a decides while b is open: S = {a: 0.008, b: 1}, threshold 0.01 * 1 / 2 = 0.005.
    assert fdr.decide(a, 0.008) == (False, 2, 1)
    fdr.open_candidate(c)  # opened after a was decided: a is not in its set
    # b: S = {b: 0.009, a: 0.008 (decided since b opened), c: 1}; rank 2 of 3, threshold 0.00667.
    assert fdr.decide(b, 0.009) == (False, 3, 2)
    # c: S = {c: 0.004, b: 0.009}; rank 1 of 2, threshold 0.005.
    assert fdr.decide(c, 0.004) == (True, 2, 1)
    assert fdr.decided == deque()  # nothing open: every decided p-value is dropped
    fdr.open_candidate(d)
    assert fdr.decide(d, 0.0099) == (True, 1, 1)


def test_two_streams_degrading_together_are_both_confirmed() -> None:
    """Two real drops at once both page, each on its own sequential test (BH is reported, not a gate)."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    rng = random.Random(2)
    alerts: list[Alert] = []
    for i in range(1500):
        for task in ("a", "b"):
            rate = 0.8 if i < 800 else 0.45
            alerts += monitor.process(Outcome(task=task, time=float(i), success=rng.random() < rate))
    confirmed = [a for a in alerts if a.status == "confirmed"]
    assert {a.stream["task"] for a in confirmed} == {"a", "b"}
    assert all(a.extra["bh_m"] >= 1 and a.p_value is not None and a.p_value <= 0.05 for a in confirmed)


# -- lifecycle: a confirmed alert resolves when its stream is back --------------------------------
def drift(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.status, a.id) for a in alerts if a.kind == "drift"]


def test_confirmed_alert_resolves_with_the_same_id_when_the_stream_recovers() -> None:
    """Drop, then back: suspected, confirmed, resolved (one id), and quiet afterwards at the old rate."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    alerts = run(monitor, [(0.8, 800), (0.5, 600), (0.8, 4000)])
    page = next(a for a in alerts if a.status == "confirmed")
    assert [a.status for a in alerts if a.id == page.id] == ["suspected", "confirmed", "resolved"]
    # A suspicion of the change back, if any, is closed as part of the recovery, never confirmed.
    assert all(a.status in ("suspected", "resolved") for a in alerts if a.id != page.id)
    resolved = next(a for a in alerts if a.id == page.id and a.status == "resolved")
    assert resolved.extra["resolved_by"] == "recovery"
    assert resolved.current.mean > 0.7  # the recovered level, not the degraded one
    # Evidence of a return within tolerance takes a few hundred observations (benchmarks/lifecycle.py).
    assert resolved.extra["recovered_after"] < 600 + 1200


def test_a_stream_that_stays_degraded_does_not_resolve() -> None:
    """After a confirmed drop, 8,000 more observations at the degraded rate resolve nothing."""
    for seed in (1, 2, 3):
        monitor = Monitor(Config(signals=["success"]), threaded=False)
        alerts = run(monitor, [(0.8, 800), (0.5, 8600)], seed=seed)
        page = next(a.id for a in alerts if a.status == "confirmed")
        assert ("resolved", page) not in drift(alerts), seed


def test_keep_firing_holds_a_resolve_back() -> None:
    """With keep_firing longer than the run, a recovered stream's alert stays open (flap suppression)."""
    monitor = Monitor(Config(signals=["success"], keep_firing=100_000), threaded=False)
    alerts = run(monitor, [(0.8, 800), (0.5, 600), (0.8, 3000)])
    page = next(a.id for a in alerts if a.status == "confirmed")
    assert ("resolved", page) not in drift(alerts)
    assert [a.status for a in alerts if a.status == "confirmed"] == ["confirmed"]  # no "improvement" page


def test_rebaseline_accepts_the_new_level() -> None:
    """rebaseline() resolves the open alert (resolved_by rebaseline); the new level raises nothing more."""
    sink = InMemorySink()
    monitor = Monitor(Config(signals=["success"]), [sink], threaded=False)
    run(monitor, [(0.8, 800), (0.5, 600)])
    (resolved,) = monitor.rebaseline("service=unknown_service;task=fix")
    assert resolved.status == "resolved" and resolved.extra["resolved_by"] == "rebaseline"
    assert sink.alerts[-1] == resolved
    assert monitor.rebaseline("service=unknown_service;task=fix") == []  # nothing open any more
    later = run(monitor, [(0.5, 3000)], seed=9)
    assert "confirmed" not in [s for s, _ in drift(later)]


def test_submitted_outcomes_are_processed_without_a_flush() -> None:
    """The batching worker picks outcomes up on its own, also after a quiet spell (within ~1 s)."""
    monitor = Monitor(Config())
    try:
        for pause in (0.0, 2.5):
            time.sleep(pause)  # long enough for the worker's wait to back off to its longest
            before = monitor.stats.processed
            monitor.submit(Outcome(task="t", success=True))
            deadline = time.monotonic() + 3.0
            while monitor.stats.processed == before and time.monotonic() < deadline:
                time.sleep(0.01)
            assert monitor.stats.processed == before + 1
    finally:
        monitor.shutdown()


def run_indexed(rates: list[tuple[float, int]], seed: int) -> list[tuple[int, Alert]]:
    """Alerts with the index of the outcome that raised them."""
    monitor = Monitor(Config(signals=["success"]), threaded=False)
    rng = random.Random(seed)
    out: list[tuple[int, Alert]] = []
    i = 0
    for rate, count in rates:
        for _ in range(count):
            i += 1
            out += [
                (i, a)
                for a in monitor.process(Outcome(task="fix", time=float(i), success=rng.random() < rate))
            ]
    return out


def test_a_partial_recovery_is_a_new_level_not_a_resolve() -> None:
    """0.8 -> 0.5 -> 0.65 over 6 seeds: never "back at its baseline"; the new level is announced.

    A resolve needs evidence that the stream is within tolerance of its baseline (a third of the
    change here: above 0.7), not only that it left the changed level and that a short fresh sample
    fails to differ from the baseline. The partial recovery supersedes the page with a confirmed
    alert for the new level (same direction, against the same baseline)."""
    announced = 0
    for seed in range(6):
        out = run_indexed([(0.8, 800), (0.5, 600), (0.65, 3000)], seed)
        recovered = [a for _, a in out if a.status == "resolved" and a.extra.get("resolved_by") == "recovery"]
        assert recovered == [], (seed, [a.message for a in recovered])
        levels = [(i, a) for i, a in out if a.status == "confirmed" and "partial_recovery_of" in a.extra]
        if levels:
            announced += 1
            i, level = levels[0]
            assert i > 1400 and level.direction == "down" and 0.55 < level.current.mean < 0.75, seed
            assert "partial recovery" in level.message and "not back at the baseline" in level.message
            old = next(
                a for _, a in out if a.id == level.extra["partial_recovery_of"] and a.status == "resolved"
            )
            assert old.extra["resolved_by"] == "superseded" and old.extra["superseded_by"] == level.id
            assert 1400 - 50 <= level.change_at <= i
    assert announced >= 4


def test_a_full_recovery_resolves_across_seeds() -> None:
    """0.8 -> 0.5 -> 0.8 over 6 seeds: every episode still open at the return ends resolved by recovery."""
    for seed in range(6):
        out = run_indexed([(0.8, 800), (0.5, 600), (0.8, 3000)], seed)
        final: dict[str, Alert] = {a.id: a for _, a in out if a.kind == "drift"}
        assert all(a.status == "resolved" for a in final.values()), seed
        assert any(i > 1400 and a.extra.get("resolved_by") == "recovery" for i, a in out), seed
