"""An open page's recovery check when a seasonal profile appears (issue 16): its baseline and changed
level are re-expressed in the profile, so a page raised on a cycle before the profile is not paged
again as a "partial recovery" against a baseline from a trough (seeded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftwatch import Alert, Config, Monitor, Outcome

PER_DAY = 2000


def test_a_cycle_paged_before_its_profile_is_not_paged_again_as_a_partial_recovery() -> None:
    """±25% daily latency cycle at 2,000 a day, 20 streams of 6,000 (the profile is shown after
    about 4,300): at most 6 pages as a partial recovery of an open page (4; before the
    re-expression 10, of 66 pages)."""
    rng = np.random.default_rng(20261231)
    partial = 0
    for _ in range(20):
        t = np.arange(6000) + rng.integers(0, PER_DAY)
        values = math.log(1.25) * np.sin(2 * np.pi * t / PER_DAY) + rng.normal(0.0, 0.5, 6000)
        monitor = Monitor(Config(signals=["latency_s"], console=False), threaded=False)
        for i, v in enumerate(values):
            outcome = Outcome(task="t", time=i * 86400 / PER_DAY, latency_s=4.0 * math.exp(float(v)))
            for alert in monitor.process(outcome):
                if alert.status == "confirmed" and "partial_recovery_of" in alert.extra:
                    partial += 1
    assert partial <= 6


def _cycle(rng: np.random.Generator, per_day: int, length: int, step_at: int | None = None) -> list[Outcome]:
    """Log latency with a ±25% daily cycle of random phase, sd 0.5; +30% from ``step_at`` on."""
    t = np.arange(length) + rng.integers(0, per_day)
    values = math.log(1.25) * np.sin(2 * np.pi * t / per_day) + rng.normal(0.0, 0.5, length)
    if step_at is not None:
        values[step_at:] += math.log(1.3)
    return [
        Outcome(task="t", time=i * 86400 / per_day, latency_s=4.0 * math.exp(float(v)))
        for i, v in enumerate(values)
    ]


def _pages(outcomes: list[Outcome]) -> tuple[dict[str, int], list[tuple[int, Alert]]]:
    """The pages still open at the end (id: index confirmed) and those resolved as explained by
    the seasonal profile (index confirmed, the resolving alert)."""
    monitor = Monitor(Config(signals=["latency_s"], console=False), threaded=False)
    opened: dict[str, int] = {}
    explained: list[tuple[int, Alert]] = []
    for i, outcome in enumerate(outcomes):
        for alert in monitor.process(outcome):
            if alert.status == "confirmed":
                opened[alert.id] = i
            elif alert.status == "resolved" and alert.id in opened:
                at = opened.pop(alert.id)
                if alert.extra.get("resolved_by") == "seasonal":
                    explained.append((at, alert))
    return opened, explained


def test_a_cycle_paged_before_its_profile_resolves_as_explained_by_it() -> None:
    """±25% daily latency cycle at 500 a day, 20 null streams of 6,000 (the profile is shown after
    about 1,300): the early false pages resolve as explained by the hour-of-day profile; at most
    3 streams end with a page open (1; without the test 7, none explained)."""
    rng = np.random.default_rng(20261202)
    stuck, explained = 0, []
    for _ in range(20):
        opened, resolved = _pages(_cycle(rng, 500, 6000))
        stuck += bool(opened)
        explained += resolved
    assert stuck <= 3
    assert len(explained) >= 4  # 6
    assert all(at < 1500 for at, _ in explained)  # raised before the profile was shown
    assert all("explained by the hour-of-day profile" in alert.message for _, alert in explained)


def test_a_persistent_step_on_a_cycle_is_not_explained_away() -> None:
    """+30% latency from observation 1,500 on the same cycle, 20 streams of 5,000: no page of the
    step resolves as explained by the profile, and 18 streams end with the step's page open (19
    without the test: in one an early false improvement, explained at 1,445, no longer made the
    step a regression against its low level, and the step's suspicion was inconclusive)."""
    rng = np.random.default_rng(20261203)
    explained = kept = 0
    for _ in range(20):
        opened, resolved = _pages(_cycle(rng, 500, 5000, step_at=1500))
        explained += sum(at >= 1500 for at, _ in resolved)
        kept += any(at >= 1500 for at in opened.values())
    assert explained == 0
    assert kept >= 17


@pytest.mark.parametrize("size", [37, 256])
def test_batches_resolve_an_explained_page_as_process_does(size: int) -> None:
    """``process_batch`` gives ``process``'s alerts and checkpoint on a cyclic stream whose early
    page resolves as explained by the profile (it took one value more when the unrolled loop let
    the recovery check see a refit made by the same value). Seed 20261203: on 20261202 no page is
    explained once stage two takes the variance-time reading at an upper bound (90% or 95%)."""
    stream = _cycle(np.random.default_rng(20261203), 500, 6000)
    one, many = (Monitor(Config(signals=["latency_s"], console=False), threaded=False) for _ in range(2))
    expected = [a.to_dict() for o in stream for a in one.process(o)]
    got = [a.to_dict() for i in range(0, len(stream), size) for a in many.process_batch(stream[i : i + size])]
    assert got == expected
    assert any(a["extra"].get("resolved_by") == "seasonal" for a in expected)
    assert one.snapshot() == many.snapshot()
