"""The seasonal baseline (issue 16 item 3): daily cycles stay quiet, a step on a cycle is still paged,
independent values are left alone, and the profile is small and survives a checkpoint (seeded)."""

from __future__ import annotations

import math
import pickle

import numpy as np

from driftwatch import Config, Monitor, Outcome
from driftwatch.detectors import LaggedSR
from driftwatch.detectors._seasonal import Seasonal

PER_DAY = 500
LOG25 = math.log(1.25)


def cycle(
    rng: np.random.Generator, length: int, amplitude: float = LOG25, per_day: int = PER_DAY
) -> list[float]:
    """Log latency with a daily sinusoid of ``amplitude`` (random phase) and log-sd 0.5."""
    t = np.arange(length) + rng.integers(0, per_day)
    return list(amplitude * np.sin(2 * np.pi * t / per_day) + rng.normal(0.0, 0.5, length))


def pages(values: list[float], per_day: int = PER_DAY) -> list[tuple[int, str, dict[str, object], str]]:
    """(index, direction, detector evidence, message) of each confirmed page through the Monitor."""
    monitor = Monitor(Config(signals=["latency_s"], console=False), threaded=False)
    out = []
    for i, v in enumerate(values):
        outcome = Outcome(task="t", time=i * 86400 / per_day, latency_s=4.0 * math.exp(v))
        for alert in monitor.process(outcome):
            if alert.kind == "drift" and alert.status == "confirmed":
                out.append((i, alert.direction, alert.detector, alert.message))
    return out


def test_daily_cycle_stays_quiet_once_the_profile_is_shown() -> None:
    """A ±25% daily latency cycle (500 a day): at most one page in 18,000 observations once the
    hour-of-day profile is in use (from about the third day; 9 without it), and the profile's
    amplitude is the cycle's."""
    rng = np.random.default_rng(20261216)
    late = 0
    for _ in range(4):
        found = pages(cycle(rng, 6000))
        late += sum(1 for i, *_ in found if i >= 3 * PER_DAY)
    assert late <= 1
    det = LaggedSR(kind="numeric")
    for i, v in enumerate(cycle(rng, 3000)):
        det.update(v, i * 86400 / PER_DAY)
    info = det.evidence()["seasonal"]
    assert abs(info["hour_of_day"]["amplitude"] - LOG25) < 0.06 and "day_of_week" not in info


def test_step_on_a_cycle_is_paged_within_a_day_and_says_seasonal() -> None:
    """Latency +30% on top of a ±25% daily cycle, at observation 2,000: paged upwards within a day's
    500 observations in most streams, and the page says its values were seasonally adjusted."""
    rng = np.random.default_rng(20261217)
    delays: list[float] = []
    seasonal: list[tuple[bool, bool]] = []
    for _ in range(8):
        values = cycle(rng, 2600)
        values[2000:] = [v + math.log(1.3) for v in values[2000:]]
        found = [(i, d, info, msg) for i, d, info, msg in pages(values) if i >= 2000 and d == "up"]
        delays.append(found[0][0] - 1999 if found else math.inf)
        seasonal += [
            ("seasonal" in info, "seasonally adjusted by hour of day" in msg) for _, _, info, msg in found
        ]
    assert sum(d <= PER_DAY for d in delays) >= 6
    # Some pages confirm a suspicion from before the profile was shown (stage two runs on).
    assert sum(a for a, _ in seasonal) >= 6 and all(a == b for a, b in seasonal)
    assert float(np.median(delays)) <= 300


def test_independent_values_get_no_profile() -> None:
    """Independent log-normal values with event times over 12 days: no profile is shown (the split
    halves of an iid stream agree only by chance), so the detector watches the values as they are."""
    rng = np.random.default_rng(20261218)
    shown = 0
    for _ in range(10):
        det = LaggedSR(kind="numeric")
        for i, v in enumerate(rng.normal(0.0, 0.5, 6000)):
            det.update(float(v), i * 86400 / PER_DAY)
            shown += det.evidence().get("seasonal") is not None
    assert shown <= 0.01 * 10 * 6000


def test_pass_fail_streams_have_no_seasonal_baseline() -> None:
    """The seasonal baseline is for numeric signals; pass/fail values are watched as they are."""
    det = LaggedSR(kind="binary")
    assert det.adjusted(1.0, 3600.0 * 13) == 1.0 and "seasonal" not in det.evidence()


def test_profile_is_small_and_survives_a_checkpoint() -> None:
    """Under 64 KiB pickled with its delay buffer full; a restored detector adjusts and alarms as the
    original does; a detector pickled before the seasonal baseline existed restores and learns one."""
    rng = np.random.default_rng(20261219)
    values = cycle(rng, 4000)
    det = LaggedSR(kind="numeric")
    for i, v in enumerate(values[:2500]):
        det.update(v, i * 86400 / PER_DAY)
    assert det.evidence().get("seasonal")
    assert len(pickle.dumps(det._season)) < 64 * 1024
    twin = pickle.loads(pickle.dumps(det))
    for i, v in enumerate(values[2500:], 2500):
        t = i * 86400 / PER_DAY
        assert twin.adjusted(v, t) == det.adjusted(v, t)
        det.update(v, t)
        twin.update(v, t)
        assert twin.drift_detected == det.drift_detected
    state = det.__getstate__()
    del state["_season"]
    old = LaggedSR.__new__(LaggedSR)
    old.__setstate__(state)
    assert isinstance(old._season, Seasonal) and not old._season.active
    for i, v in enumerate(values, 4000):
        old.update(v, i * 86400 / PER_DAY)
    assert old.evidence().get("seasonal")


def test_suspicion_pending_when_the_profile_appears_is_closed() -> None:
    """A suspicion pending on a ±25% daily cycle when its profile is shown is closed as inconclusive
    then (its baseline and variance-time reading are in the raw values), before stage two's
    ``max_fresh``, so stage one watches the adjusted values again (seeded)."""
    rng = np.random.default_rng(20261220)
    monitor = Monitor(Config(signals=["latency_s"], console=False), threaded=False)
    closed = []
    for i, v in enumerate(cycle(rng, 2000)):
        outcome = Outcome(task="t", time=i * 86400 / PER_DAY, latency_s=4.0 * math.exp(v))
        for alert in monitor.process(outcome):
            if alert.kind == "drift" and "seasonal profile appeared" in alert.message:
                closed.append((alert.extra["fresh_n"], alert.status, alert.extra["resolved_by"]))
    assert closed and all(s == "resolved" and by == "inconclusive" for _, s, by in closed)
    assert all(n < Config().max_fresh for n, _, _ in closed)


def test_a_resumed_baseline_is_not_moved_by_the_phase_seen_since_the_resume() -> None:
    """When the profile appears, the restart check's shift is the mean offset over the detector's
    baseline: the values of a resumed baseline (hours unknown) count at the offsets' daily mean of
    zero, so 127 values counted at a cycle's peak do not move a 1,000-value baseline by the peak's
    offset (without the resumed values: 0.14, a restart)."""

    def shift_when_shown(uncounted: int) -> tuple[float, bool]:
        rng = np.random.default_rng(20261230)
        season = Seasonal(delay=0)
        for i in range(3000):
            t = i * 86400 / PER_DAY
            phase = math.sin(2 * math.pi * i / PER_DAY)
            if i == 900:
                season.rebase(uncounted)
            if i >= 900 and phase > 0.7:
                season.note(t)  # the detector is fed only the peak's values since its resume
            if season.observe(LOG25 * phase + float(rng.normal(0.0, 0.5)), t):
                return season.shift, season.changed
        raise AssertionError("no profile shown")

    alone, restarted = shift_when_shown(0)
    assert alone > 0.1 and restarted
    resumed, moved = shift_when_shown(1000)
    assert 0 < resumed < alone * 127 / 1000 * 1.01 and not moved
