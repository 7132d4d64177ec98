"""``feed`` (stage one over a run of values in one loop) leaves a detector exactly as ``update`` does
value by value: the same alarms at the same values, the same change times, the same state to the
bit (seeded streams: a daily cycle that brings the seasonal profile in and restarts the baseline,
steps, pass/fail near its floor, dependent values; runs cut at every size)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from driftwatch.detectors import LaggedSR
from driftwatch.detectors._batch import feed, steady
from driftwatch.detectors._lagged_sr import EARLY_WINDOW

PER_DAY = 500


def numeric_stream(seed: int, length: int = 7000) -> tuple[list[float], list[float]]:
    """Log latency: a ±0.6 daily cycle, log-sd 0.5, +0.5 from observation 4,000 and back at 5,500."""
    rng = np.random.default_rng(seed)
    i = np.arange(length)
    values = 0.6 * np.sin(2 * np.pi * i / PER_DAY) + rng.normal(0.0, 0.5, length)
    values[4000:5500] += 0.5
    return [float(v) for v in values], [float(t) for t in 1.7e9 + i * 86400 / PER_DAY]


def binary_stream(seed: int, length: int = 6000) -> tuple[list[float], list[float]]:
    """Pass/fail at 0.94, in bursts (runs of 40 at 0.88 or 1.0), falling to 0.85 from 3,500."""
    rng = np.random.default_rng(seed)
    rate = np.repeat(rng.choice([0.88, 1.0], size=length // 40 + 1), 40)[:length]
    rate[3500:] = 0.85
    values = (rng.random(length) < rate).astype(float)
    return [float(v) for v in values], [1.7e9 + 60.0 * k for k in range(length)]


def alarms_update(
    det: LaggedSR, xs: list[float], ts: list[float]
) -> list[tuple[int, str | None, float | None]]:
    out = []
    for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
        det.update(x, t)
        if det.drift_detected:
            out.append((i, det.direction, det.change_time))
    return out


def alarms_feed(
    det: LaggedSR, xs: list[float], ts: list[float], size: int
) -> list[tuple[int, str | None, float | None]]:
    out, i = [], 0
    while i < len(xs):
        stop = min(len(xs), (i // size + 1) * size)  # runs as the monitor's batches cut them
        i = feed(det, xs, ts, i, stop)
        if det.drift_detected:
            out.append((i - 1, det.direction, det.change_time))
    return out


@pytest.mark.parametrize("size", [1, 3, 64, 256, 10_000])
@pytest.mark.parametrize("seed", [1, 2])
def test_numeric_stream_with_a_cycle_and_steps(seed: int, size: int) -> None:
    """A seasonal numeric stream: the profile comes in (a baseline restart), alarms mid-run."""
    xs, ts = numeric_stream(seed)
    a, b = LaggedSR(kind="numeric"), LaggedSR(kind="numeric")
    expected = alarms_update(a, xs, ts)
    assert alarms_feed(b, xs, ts, size) == expected
    assert len(expected) >= 2
    assert a._season is not None and a._season.active  # the fast loop ran with offsets in use
    assert pickle.dumps(a) == pickle.dumps(b)


@pytest.mark.parametrize("size", [1, 7, 256])
@pytest.mark.parametrize("seed", [3, 4])
def test_binary_stream_in_bursts(seed: int, size: int) -> None:
    """Pass/fail near the floor, in bursts (dispersion above 1), a fall mid-run."""
    xs, ts = binary_stream(seed)
    a, b = LaggedSR(kind="binary"), LaggedSR(kind="binary")
    expected = alarms_update(a, xs, ts)
    assert alarms_feed(b, xs, ts, size) == expected
    assert expected and a.dispersion > 1.0
    assert pickle.dumps(a) == pickle.dumps(b)


def test_options_off_and_a_given_threshold() -> None:
    """Without the seasonal profile, the dependence estimate or the self-starting phase, and with
    a threshold given, feed still matches update value for value."""
    xs, ts = numeric_stream(5, 3000)
    for options in ({"seasonal": False}, {"dependence": False}, {"self_start": False}, {"threshold": 6.0}):
        a, b = LaggedSR(kind="numeric", **options), LaggedSR(kind="numeric", **options)  # type: ignore[arg-type]
        assert alarms_feed(b, xs, ts, 100) == alarms_update(a, xs, ts), options
        assert pickle.dumps(a) == pickle.dumps(b), options


def test_steady_leaves_the_warm_up_and_lag_zero_to_update() -> None:
    """The fast loop takes a detector only past its warm-up (the early threshold's window included),
    with a lag, and not right after an alarm."""
    det = LaggedSR(kind="numeric", warmup=20, lag=5)
    assert not steady(det)
    for i in range(19):
        det.update(math.sin(i), float(i))
    assert not steady(det)
    det.update(math.sin(19), 19.0)
    assert steady(det)  # the early threshold is in force: feed runs advance up to its window's end
    assert not steady(LaggedSR(kind="numeric", warmup=20, lag=0))


@pytest.mark.parametrize("size", [7, 256, 10_000])
def test_runs_across_the_early_thresholds_end(size: int) -> None:
    """Runs that start in the early threshold's window and end after it alarm where update does:
    a threshold between the early and the later one alarms only in the window (a step there)."""
    xs, ts = numeric_stream(6, 2000)
    xs = [x + (1.5 if 600 <= i < 700 else 0.0) for i, x in enumerate(xs)]
    options = {"seasonal": False, "self_start": False}
    a, b = LaggedSR(kind="numeric", **options), LaggedSR(kind="numeric", **options)  # type: ignore[arg-type]
    expected = alarms_update(a, xs, ts)
    assert alarms_feed(b, xs, ts, size) == expected
    assert pickle.dumps(a) == pickle.dumps(b)
    assert a._h_early != a._h and any(a.warmup < i + 1 <= a.warmup + EARLY_WINDOW for i, *_ in expected)


@pytest.mark.parametrize("size", [7, 256, 10_000])
@pytest.mark.parametrize(("seed", "amplitude"), [(2, 0.3), (4, 0.2)])
def test_a_profile_switched_on_without_a_restart(seed: int, amplitude: float, size: int) -> None:
    """A weak daily cycle: its profile is switched on while the baseline needs no restart
    (``changed`` stays False), inside a run (in the early threshold's window, or after it); feed
    stops there as update does and matches it to the bit."""
    rng = np.random.default_rng(seed)
    i = np.arange(9000)
    values = amplitude * np.sin(2 * np.pi * i / PER_DAY) + rng.normal(0.0, 0.5, 9000)
    xs, ts = [float(v) for v in values], [float(t) for t in 1.7e9 + i * 86400 / PER_DAY]
    a, b = LaggedSR(kind="numeric"), LaggedSR(kind="numeric")
    flips, expected = [], []
    for k, (x, t) in enumerate(zip(xs, ts, strict=True)):
        was = a._season is not None and a._season.active
        a.update(x, t)
        assert a._season is not None
        if a._season.active != was:
            flips.append((a._season.changed, a._n))
        if a.drift_detected:
            expected.append((k, a.direction, a.change_time))
    assert flips and not flips[0][0] and flips[0][1] > a.warmup  # switched on, no restart, past the warm-up
    assert alarms_feed(b, xs, ts, size) == expected
    assert pickle.dumps(a) == pickle.dumps(b)
