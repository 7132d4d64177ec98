"""SelfStartingSR: River's form, the vectorised mirror, false alarms from observation 1, early catches."""

from __future__ import annotations

import doctest
import math
import random

import numpy as np
import pytest
from river.base import DriftDetector

from driftwatch.detectors import _self_starting
from driftwatch.detectors._self_starting import BLOCKS, THRESHOLDS, SelfStartingSR, statistic_paths


def first_alarm(detector: SelfStartingSR, stream: list[float]) -> int:
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            return i
    return -1


def vector_first(paths: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    edges = [*BLOCKS, 501]
    h = np.empty(paths.shape[1])
    for b in range(len(BLOCKS)):
        h[edges[b] - 1 : edges[b + 1] - 1] = thresholds[b]
    above = paths > h[None, : paths.shape[1]]
    return np.where(above.any(axis=1), np.argmax(above, axis=1), -1)


def test_doctest() -> None:
    result = doctest.testmod(_self_starting)
    assert result.attempted >= 1 and result.failed == 0


def test_is_a_river_detector() -> None:
    det = SelfStartingSR(kind="binary", budget=1e-3)
    assert isinstance(det, DriftDetector)
    assert (det.kind, det.budget, det.active) == ("binary", 1e-3, True)
    with pytest.raises(ValueError, match="shipped thresholds"):
        SelfStartingSR(lag=3)


@pytest.mark.parametrize("kind", ["binary", "numeric"])
def test_scalar_detector_matches_the_vectorised_mirror(kind: str) -> None:
    """The calibration simulates the detector: both fire at the same observation (a lax threshold
    so that they fire often)."""
    rng = np.random.default_rng(5)
    rows = 30
    data = (
        (rng.random((rows, 300)) < 0.7).astype(float) if kind == "binary" else rng.normal(2, 0.5, (rows, 300))
    )
    data[:, 150:] += -0.3 if kind == "binary" else 0.4  # a change in each stream
    data = np.clip(data, 0, 1) if kind == "binary" else data
    thresholds = (3.0,) * len(BLOCKS)
    expected = vector_first(statistic_paths(data, kind=kind), thresholds)
    got = [first_alarm(SelfStartingSR(kind=kind, thresholds=thresholds), list(row)) for row in data]  # type: ignore[arg-type]
    assert got == list(expected)


@pytest.mark.parametrize(("kind", "rate"), [("binary", 0.85), ("binary", 0.5), ("numeric", 0.0)])
def test_false_alarms_held_from_the_first_observation(kind: str, rate: float) -> None:
    """Fresh no-change streams, observations 1-500 (the mirror, checked above, for speed): first alarms
    per observation are not significantly above the budget (one-sided binomial, 1%)."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng([77, round(rate * 100)])
    rows = 8000
    data = (
        (rng.random((rows, 500)) < rate).astype(float) if kind == "binary" else rng.normal(5, 2, (rows, 500))
    )
    first = vector_first(statistic_paths(data, kind=kind), THRESHOLDS[kind])
    alarms = int((first >= 0).sum())
    exposure = int(np.where(first >= 0, first + 1, 500).sum())
    assert stats.binomtest(alarms, exposure, 1e-4, alternative="greater").pvalue > 0.01, (alarms, exposure)


def test_short_baseline_catch() -> None:
    """Output tokens ×2.5 (log-sd 0.5) at the 40th observation of a fresh stream: caught within 20
    observations in at least 45 of 50 seeded streams; a pass rate 0.85 → 0.45 at the 100th within 40."""
    rng = random.Random(16)
    caught = 0
    for _ in range(50):
        stream = [rng.gauss(0, 0.5) for _ in range(40)] + [rng.gauss(math.log(2.5), 0.5) for _ in range(60)]
        at = first_alarm(SelfStartingSR(kind="numeric"), stream)
        caught += 40 <= at < 60
    assert caught >= 45
    caught = 0
    for _ in range(50):
        passes = [float(rng.random() < 0.85) for _ in range(100)] + [
            float(rng.random() < 0.45) for _ in range(100)
        ]
        det = SelfStartingSR(kind="binary")
        at = first_alarm(det, passes)
        caught += 100 <= at < 140 and det.direction == "down"
    assert caught >= 40


def test_stops_at_the_handover() -> None:
    """After the handover the detector is inactive and never fires, whatever the values."""
    det = SelfStartingSR(kind="numeric", handover=50)
    rng = random.Random(1)
    assert first_alarm(det, [rng.gauss(0, 1) for _ in range(50)] + [100.0] * 50) == -1
    assert not det.active


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_a_stream_that_stays_where_it_fell_does_not_alarm_after_a_resume(rate: float) -> None:
    """resume(7 values all 0 or all 1) and more of the same: no alarm (it was one after 2 values)."""
    det = SelfStartingSR(kind="binary")
    det.resume(7, rate, 0.0)
    assert first_alarm(det, [rate] * 500) == -1


def test_a_resumed_short_baseline_is_held_to_thresholds_for_its_size() -> None:
    """After resume(7 values) no-change values alarm about as rarely as from a fresh start."""
    rng = random.Random(20261202)
    alarms = 0
    for _ in range(400):
        det = SelfStartingSR(kind="binary")
        baseline = [float(rng.random() < 0.5) for _ in range(7)]
        mean = sum(baseline) / 7
        det.resume(7, mean, sum((x - mean) ** 2 for x in baseline))
        assert det.threshold_used == max(THRESHOLDS["binary"])
        alarms += first_alarm(det, [float(rng.random() < 0.5) for _ in range(30)]) >= 0
    # 75 in 2,000 before (the first block's 0.01 and 6.87 against a held baseline); 14 now, 2 fresh.
    assert alarms <= 8
