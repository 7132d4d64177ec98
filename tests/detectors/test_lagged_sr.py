"""LaggedSR: River's form, calibrated false alarms, detection delay, and the calibration mirror."""

from __future__ import annotations

import doctest
import math
import random
import statistics

import numpy as np
import pytest
from river.base import DriftDetector

from driftwatch.detectors import DEFAULT_SHIFTS, LaggedSR, _lagged_sr
from driftwatch.detectors._calibrate import alarm_times


def first_alarm(detector: LaggedSR, stream: list[float]) -> int:
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            return i
    return -1


def test_doctest() -> None:
    """The class doctest (a seeded stream that prints where drift fires) passes."""
    result = doctest.testmod(_lagged_sr)
    assert result.attempted >= 1 and result.failed == 0


def test_is_a_river_detector_with_public_params() -> None:
    """It is a River DriftDetector; constructor arguments are public attributes."""
    d = LaggedSR(kind="binary", warmup=50, lag=100, shifts=(0.3,), budget=1e-3)
    assert isinstance(d, DriftDetector)
    assert (d.kind, d.warmup, d.lag, d.shifts, d.budget) == ("binary", 50, 100, (0.3,), 1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "gauss"}, "kind must be"),
        ({"warmup": 2}, "warmup"),
        ({"shifts": ()}, "shifts"),
        ({"budget": 2.0}, "budget"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    """Invalid arguments raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=message):
        LaggedSR(**kwargs)  # type: ignore[arg-type]


def test_state_is_wiped_after_an_alarm() -> None:
    """As in River, the update after an alarm starts afresh (a new warm-up)."""
    rng = random.Random(1)
    d = LaggedSR(kind="binary")
    stream = [float(rng.random() < 0.5) for _ in range(800)] + [float(rng.random() < 0.1) for _ in range(400)]
    assert first_alarm(d, stream) > 0
    d.update(1.0)
    assert d.n == 1 and d.warming_up and not d.drift_detected


def test_scalar_detector_matches_the_calibration_simulation() -> None:
    """The vectorised simulation that calibrates thresholds fires exactly where the detector fires."""
    rng = np.random.default_rng(11)
    binary = np.concatenate([rng.random((20, 900)) < 0.6, rng.random((20, 700)) < 0.45], axis=1).astype(float)
    numeric = np.concatenate([rng.normal(0, 1, (20, 900)), rng.normal(0.4, 1, (20, 700))], axis=1)
    # At a 0.9 pass rate "up 0.45 sd" is impossible and switched off; near 0.83 it depends on the
    # stream's own warm-up, so rows differ in which arms they use.
    high = np.concatenate([rng.random((20, 900)) < 0.9, rng.random((20, 700)) < 0.8], axis=1).astype(float)
    edge = np.concatenate([rng.random((20, 900)) < 0.83, rng.random((20, 700)) < 0.9], axis=1).astype(float)
    for kind, data in (("binary", binary), ("numeric", numeric), ("binary", high), ("binary", edge)):
        sim = alarm_times(data, kind=kind, thresholds=np.array([6.0]))[:, 0]
        for row, expected in zip(data, sim, strict=True):
            got = first_alarm(LaggedSR(kind=kind, threshold=6.0), list(row))  # type: ignore[arg-type]
            assert got == expected
    # The mirror really replays the mixture: the largest-of-CUSUMs bank fires elsewhere.
    sim = alarm_times(binary, kind="binary", thresholds=np.array([6.0]))[:, 0]
    cusum = alarm_times(binary, kind="binary", thresholds=np.array([6.0]), statistic="cusum")[:, 0]
    assert not np.array_equal(cusum, sim)


def test_impossible_alternatives_are_switched_off_at_high_pass_rates() -> None:
    """At a 0.9 pass rate "up 0.45 sd" (1.035) is off and the mixture averages three arms; at 0.5 all four."""
    for rate, expected_off in ((0.9, {("up", 0.45)}), (0.5, set()), (0.08, {("down", 0.45)})):
        d = LaggedSR(kind="binary")
        rng = np.random.default_rng(3)
        for x in rng.random(d.warmup) < rate:
            d.update(float(x))
        off = {(arm.direction, arm.shift) for arm in d._arms if arm.off}
        assert off == expected_off
        assert d._log_k == pytest.approx(np.log(4 - len(expected_off)))


@pytest.mark.parametrize(("p0", "p1"), [(0.51, 0.38), (0.90, 0.765), (0.40, 0.51), (0.90, 0.96)])
def test_detects_pass_rate_shifts_in_both_directions(p0: float, p1: float) -> None:
    """Seeded pass-rate shifts are detected in the right direction, median delay well under 400."""
    delays = []
    for seed in range(40):
        rng = random.Random(seed)
        stream = [float(rng.random() < p0) for _ in range(1000)] + [
            float(rng.random() < p1) for _ in range(1500)
        ]
        d = LaggedSR(kind="binary")
        at = first_alarm(d, stream)
        if at >= 1000:
            delays.append(at - 999)
            assert d.direction == ("down" if p1 < p0 else "up")
    assert len(delays) >= 30
    assert statistics.median(delays) < 300


def test_false_alarm_rate_within_budget() -> None:
    """Simulated no-change streams alarm at most once per 10,000 observations (seeded, 400 x 10k)."""
    rng = np.random.default_rng(2026)
    alarms = 0
    exposure = 0
    for p in (0.2, 0.51, 0.9):
        data = (rng.random((100, 10_500)) < p).astype(float)
        first = alarm_times(data, kind="binary", thresholds=np.array([_threshold(p)]))[:, 0]
        alarms += int((first >= 0).sum())
        exposure += int(np.where(first >= 0, first - 499, 10_000).sum())
    data = rng.normal(0, 1, (100, 10_500))
    first = alarm_times(data, kind="numeric", thresholds=np.array([_threshold(None)]))[:, 0]
    alarms += int((first >= 0).sum())
    exposure += int(np.where(first >= 0, first - 499, 10_000).sum())
    assert alarms / exposure * 10_000 <= 1.0


def _threshold(p: float | None) -> float:
    from driftwatch.detectors._thresholds import threshold_for

    return threshold_for("binary" if p is not None else "numeric", p or 0.0, 1e-4, DEFAULT_SHIFTS)


def test_infinite_threshold_never_alarms_and_huge_ones_are_refused() -> None:
    """threshold=inf never fires, even on a stream far from its baseline; above 650 is an error."""
    d = LaggedSR(kind="numeric", warmup=10, lag=100_000, threshold=math.inf)
    for i in range(10):
        d.update(float(i % 2))
    for _ in range(2000):
        d.update(10.0)
        assert not d.drift_detected
    assert math.isfinite(d.statistic)
    with pytest.raises(ValueError, match="at most 650"):
        LaggedSR(threshold=700.0)
