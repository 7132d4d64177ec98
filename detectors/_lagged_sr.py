"""A two-sided mixture Shiryaev–Roberts detector against a lagged baseline, in River's detector form."""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

from river.base import DriftDetector

from driftwatch._stats import Moments
from driftwatch.detectors._dispersion import Dispersion
from driftwatch.detectors._seasonal import Seasonal
from driftwatch.detectors._self_starting import SelfStartingSR
from driftwatch.detectors._thresholds import threshold_for

__all__ = ["DEFAULT_LAG", "DEFAULT_SHIFTS", "DEFAULT_WARMUP", "EARLY_WINDOW", "LaggedSR", "season_of"]

#: Shift sizes the mixture covers, in standard deviations of the watched value. A pass rate falling
#: 0.51 → 0.38 is 0.26 sd; 0.90 → 0.765 is 0.45 sd; +30% latency at a log-sd of 0.5 is 0.52 sd.
DEFAULT_SHIFTS: tuple[float, ...] = (0.3, 0.45)
#: Observations that estimate the baseline before detection starts.
DEFAULT_WARMUP = 500
#: The most recent observations kept out of the baseline, so that a change does not leak into it.
DEFAULT_LAG = 300
#: Observations after the warm-up that are watched against the calibrated *early* threshold: the
#: baseline rests on 500-700 values there, and a likelihood ratio against an estimated baseline
#: alarms more often than one against the true rate (1.3-1.5 per 10,000 at a single threshold).
EARLY_WINDOW = 500

#: Baseline weight for confirming a self-starting alarm (``SequentialConfirm.baseline_weight``): its
#: false alarms select a short baseline that lies away from the alarm (1.1 standard errors on
#: average), which at weight 1 confirmed 21-27% of them; 0.5 confirms ~10% (benchmarks/production.py).
SELF_STARTING_BASELINE_WEIGHT = 0.5
#: Smallest change a self-starting alarm's confirmation must page (``SequentialConfirm.min_shift``):
#: on 449 / 542 self-starting false alarms (pass/fail / log values) 0.2 sd withdrew 8-24% (the short
#: baseline caps the evidence), 0.75 sd withdraws 79% and confirms 8.5-9.4%; real changes of
#: 0.94-1.1 sd are confirmed as often as at 0.2 (80/81 and 66/66).
SELF_STARTING_MIN_SHIFT = 0.75

Kind = Literal["binary", "numeric"]
#: Statistics are kept on the linear scale and held at _R_MAX, so a finite threshold must stay below
#: log(_R_MAX / arms): a threshold of 650 already means one false alarm per e^650 observations.
_R_MAX = 1e300
_MAX_LOG_THRESHOLD = 650.0
_P_FLOOR = 0.02  # a base rate of 0 or 1 has no spread; floor it so one failure is not infinite evidence


class _Arm:
    """One alternative (shift size and direction): its Shiryaev–Roberts statistic, and a CUSUM of the
    same likelihood ratios whose last zero estimates when the change began.

    Both are kept on the linear scale (``r``: R, ``w``: exp of the CUSUM), which needs no logarithm or
    exponential per binary update. An alarm fires once the mixture's mean R passes exp(threshold),
    so before it every R is below ``k · exp(h)`` times one step's ratio, and ``w ≤ max(1, r)``; both
    are held at ``_R_MAX`` (1e300), which only a threshold near its maximum (650) or inf can reach.
    ``mark`` holds the moments of every observation up to the CUSUM's last zero; the moments since
    then are the detector's running moments minus these (one tuple copy per zero, no update per value).
    """

    __slots__ = ("direction", "mark", "off", "r", "shift", "w", "zero_at", "zero_time")

    def __init__(self, direction: str, shift: float) -> None:
        self.direction = direction
        self.shift = shift
        self.off = False  # an alternative outside the possible pass rates (see LaggedSR._choose_arms)
        self.r = 0.0
        self.w = 1.0
        self.mark: tuple[int, float, float] = (0, 0.0, 0.0)
        self.zero_at = 0
        self.zero_time = 0.0

    @property
    def log_r(self) -> float:
        return math.log(self.r) if self.r > 0 else -math.inf


class LaggedSR(DriftDetector):
    """Two-sided change detector: a mixture Shiryaev–Roberts statistic against a lagged baseline.

    Each alternative (a shift of ``shifts`` standard deviations, up or down) keeps a
    Shiryaev–Roberts statistic ``R ← (1 + R) · LR`` of the exact likelihood ratio of each new value
    (Bernoulli for ``kind="binary"``, Gaussian on the standardised value for ``kind="numeric"``).
    The detector fires when the *average* of these statistics crosses a threshold. Averaging
    rather than taking the largest of separate CUSUMs is what keeps it close to a CUSUM that is told
    the true shift: neighbouring alternatives add up instead of each paying for its own false
    alarms (``docs/detection.md`` measures the difference).

    The reference is every observation except the latest ``lag`` ones, after a ``warmup``. River's
    ``PageHinkley`` compares with the running mean since its reset, so after a change the new values
    leak into its reference and the slow detections get slower; River has no detector with a
    lagged reference, so this one is written in River's form (``update(x)``, ``drift_detected``,
    state wiped on the update after an alarm) on River's ``DriftDetector`` base.

    Thresholds come from a table calibrated under no change (``make calibrate``) per base rate: at
    most one false alarm per ``1 / budget`` observations over 10,000, and in the first 500 after the
    warm-up (its own, early threshold). Change time: the dominating alternative's CUSUM's last zero.

    Parameters
    ----------
    kind
        ``"binary"`` for pass/fail (0/1) values, ``"numeric"`` for values on a roughly Gaussian scale
        (feed log latency, log tokens, scores).
    warmup
        Observations that form the first baseline; no detection before them.
    lag
        Most recent observations kept out of the baseline.
    shifts
        Shift sizes in standard deviations; one alternative per size and direction.
    budget
        False alarms per observation the calibrated threshold allows (default one per 10,000).
    threshold
        A threshold on the log of the mixture statistic to use instead of the calibrated one.
    self_start
        Watch the warm-up too, with a ``SelfStartingSR`` (predictive likelihood ratios against the
        observations so far, its own thresholds at ``budget``) that hands over at the end of the
        warm-up: large changes are caught from about the 20th observation. Off when a ``threshold``
        is given (that threshold is the lagged statistic's only).
    dependence
        Estimate the long-run variance inflation κ of the stream (batch means, ``dispersion``) and
        divide every log likelihood ratio by it, so that bursts, batches of easy and hard tasks and
        autocorrelation do not read as changes. Off: the values are taken as independent.
    seasonal
        For ``kind="numeric"``: learn hour-of-day and day-of-week profiles from the event times
        (``Seasonal``) and watch each value minus its offset, so daily and weekly cycles do not read
        as changes; feed stage two ``adjusted`` values. Off (and for pass/fail): values as they are.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(10)
    >>> detector = LaggedSR(kind="binary")
    >>> stream = [rng.random() < 0.51 for _ in range(1000)] + [rng.random() < 0.38 for _ in range(1000)]
    >>> for i, passed in enumerate(stream):
    ...     detector.update(passed)
    ...     if detector.drift_detected:
    ...         print(f"change detected at {i}, {detector.direction}, began near {detector.change_index}")
    ...         break
    change detected at 1096, down, began near 987
    """

    def __init__(
        self,
        kind: Kind = "numeric",
        warmup: int = DEFAULT_WARMUP,
        lag: int = DEFAULT_LAG,
        shifts: Sequence[float] = DEFAULT_SHIFTS,
        budget: float = 1e-4,
        threshold: float | None = None,
        self_start: bool = True,
        dependence: bool = True,
        seasonal: bool = True,
    ) -> None:
        if kind not in ("binary", "numeric"):
            raise ValueError(f"kind must be 'binary' or 'numeric', got {kind!r}")
        if warmup < 10:
            raise ValueError(f"warmup must be at least 10 observations, got {warmup}")
        if lag < 0:
            raise ValueError(f"lag must be >= 0, got {lag}")
        if not shifts or any(s <= 0 for s in shifts):
            raise ValueError(f"shifts must be positive sizes in standard deviations, got {list(shifts)!r}")
        if not 0 < budget < 1:
            raise ValueError(f"budget is false alarms per observation, between 0 and 1; got {budget}")
        if threshold is not None and not (threshold <= _MAX_LOG_THRESHOLD or threshold == math.inf):
            raise ValueError(
                f"threshold is on the log scale, at most {_MAX_LOG_THRESHOLD:g} (or inf: never alarm); "
                f"got {threshold}"
            )
        super().__init__()
        self.kind = kind
        self.warmup = warmup
        self.lag = lag
        self.shifts = tuple(shifts)
        self.budget = budget
        self.threshold = threshold
        self.self_start = self_start
        self.dependence = dependence
        self._disp = Dispersion(kind, warmup)
        self._disp.enabled = dependence
        self.seasonal = seasonal
        self._season = Seasonal(lag) if seasonal and kind == "numeric" else None
        self._reset()

    def _new_early(self) -> SelfStartingSR | None:
        if not self.self_start or self.threshold is not None:
            return None
        return SelfStartingSR(kind=self.kind, budget=self.budget, handover=self.warmup)

    def _reset(self, uncounted: int = 0) -> None:
        super()._reset()
        self._n = 0
        self._ref = Moments()
        self._pending: deque[float] = deque()
        self._all = Moments()
        self._arms = [_Arm(d, s) for s in self.shifts for d in ("up", "down")]
        self._log_k = math.log(len(self._arms))
        self._sum_r = 0.0  # the arms' R added up; the statistic is log(sum / arms on)
        self._limit = math.inf  # sum_r above this is an alarm: arms on · exp(threshold)
        self._limit_for: float | None = None  # the threshold _limit was computed for
        self._fired: _Arm | None = None
        self._h: float | None = self.threshold
        self._h_early: float | None = self.threshold  # in force up to observation warmup + EARLY_WINDOW
        # The warm-up's own detector (None once handed over, or when off), and how the last alarm was
        # raised: (phase, observations in its baseline) for the alert's evidence.
        self._early = self._new_early()
        self._fired_by: tuple[str, int] = ("lagged", 0)
        season: Seasonal | None = getattr(self, "_season", None)
        if season is not None:
            season.rebase(uncounted)  # uncounted: the values of a baseline resumed from
        if hasattr(self, "_disp"):
            self._disp.restart()
            self._disp.early = self._early
            if self._early is not None:
                self._early.dispersion = self._disp.kappa

    # -- results -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Observations since the last reset."""
        return self._n

    @property
    def warming_up(self) -> bool:
        return self._n < self.warmup

    @property
    def statistic(self) -> float:
        """Log of the mixture statistic (compare with ``threshold_used``)."""
        return math.log(self._sum_r) - self._log_k if self._sum_r > 0 else -math.inf

    @property
    def direction(self) -> str | None:
        """``"up"`` or ``"down"`` right after a detection, else None."""
        return self._fired.direction if self._fired else None

    @property
    def change_index(self) -> int | None:
        """Estimated first changed observation (1-based since reset): the CUSUM's last zero + 1."""
        return self._fired.zero_at + 1 if self._fired else None

    @property
    def change_time(self) -> float | None:
        """Event time of the last observation before the estimated change."""
        return self._fired.zero_time if self._fired else None

    @property
    def threshold_used(self) -> float | None:
        if self._fired is not None and self._fired_by[0] == "self-starting" and self._early is not None:
            return self._early.threshold_used
        return self._h_early if self._n <= self.warmup + EARLY_WINDOW else self._h

    @property
    def phase(self) -> str:
        """``"self-starting"`` while the warm-up's own detector watches (or if it raised the last
        alarm), else ``"lagged"``."""
        if self._fired is not None:
            return self._fired_by[0]
        return "self-starting" if self._early is not None and self.warming_up else "lagged"

    @property
    def baseline_n(self) -> int:
        """Observations in the baseline the last alarm was raised against (or the current one). For
        the self-starting phase, the observations before the estimated change (those ``split``
        returns first), which is all the baseline a short stream has."""
        if self._fired is not None:
            return self._fired_by[1]
        if self._early is not None and self.warming_up:
            return self._early.baseline_moments[0]
        return self._ref.n

    def evidence(self) -> dict[str, Any]:
        """How the last alarm was raised, for the alert: the phase and the baseline's size."""
        info: dict[str, Any] = {
            "phase": self.phase,
            "baseline_n": self.baseline_n,
            "dispersion": round(self._disp.kappa, 3),
            "dispersion_estimate": round(self._disp.estimate, 3),
        }
        seasonal = self._season.describe() if self._season is not None else None
        if seasonal is not None:  # the values are watched minus their hour's (weekday's) offset
            info["seasonal"] = seasonal
        if self.phase == "self-starting":
            info["self_starting_shifts"] = list(self._early.shifts) if self._early else []
        return info

    @property
    def alternatives_off(self) -> set[tuple[str, float]]:
        """The alternatives (direction, shift) switched off as impossible at the baseline's pass rate."""
        return {(arm.direction, arm.shift) for arm in self._arms if arm.off}

    @property
    def mixture_size(self) -> int:
        """How many alternatives the mixture statistic averages (those not switched off)."""
        return round(math.exp(self._log_k))

    def split(self) -> tuple[Moments, Moments]:
        """After a detection: moments of the observations before and after the estimated change."""
        if self._fired is None:
            return self._all, Moments()
        before = Moments(*self._fired.mark)
        return before, self._all.minus(before)

    @property
    def observed(self) -> Moments:
        """Moments of every observation since the last reset (or resume)."""
        return Moments(self._all.n, self._all.mean, self._all.m2)

    def resume(self, baseline: Moments, t: float | None = None) -> None:
        """Start afresh with ``baseline`` as the reference and no warm-up: after a false alarm.

        When a second opinion (fresh observations) finds no change, the old baseline is still
        right; re-estimating it from a short warm-up would make the next false alarm likelier.
        ``t`` is the event time of the last observation in ``baseline``: every CUSUM starts at zero
        there, so a change right after it is dated from it. Without ``t``, the latest time at which
        a CUSUM was last at zero before the resume (an observed time, never 0.0 after data).
        """
        if t is None:
            t = max((arm.zero_time for arm in self._arms), default=0.0)
        self._reset(baseline.n)
        self._n = baseline.n
        self._ref = Moments(baseline.n, baseline.mean, baseline.m2)
        self._all = Moments(baseline.n, baseline.mean, baseline.m2)
        for arm in self._arms:
            arm.mark = (baseline.n, baseline.mean, baseline.m2)
            arm.zero_at, arm.zero_time = baseline.n, t
        if self._early is not None:
            if self._n < self.warmup:
                self._early.resume(baseline.n, baseline.mean, baseline.m2, t)
            else:
                self._early = None
        if self._n >= self.warmup:
            self._choose_arms()
            if self._h is None:
                self._h, self._h_early = self._calibrated()

    # -- updating ------------------------------------------------------------------------------
    def update(self, x: float, t: float = 0.0) -> None:
        """Feed one observation, with its event time ``t`` for the change-time estimate (and, for
        numeric streams, the seasonal profile: the detector watches ``adjusted(x, t)``)."""
        season = self._season
        if self._drift_detected:
            self._reset()
        elif season is not None and season.changed:  # the profile moved: the baseline re-expressed in it
            self.resume(Moments(self._ref.n, self._ref.mean - season.shift, self._ref.m2))
            self._seasonal_active = not season.active  # so the variance-time reading starts over
        if season is not None and season.active != getattr(self, "_seasonal_active", False):
            self._seasonal_active = season.active  # the variance-time reading starts over
            self._disp.forget_scales(len(self._pending))
        value = float(x)
        if season is not None:
            value -= season.note(t)
            season.observe(float(x), t)
        self._n += 1
        moments = self._all  # Moments.add, inlined: this runs for every outcome and signal
        moments.n += 1
        delta = value - moments.mean
        moments.mean += delta / moments.n
        moments.m2 += delta * (value - moments.mean)
        if self._n <= self.warmup:
            self._ref.add(value)
            self._disp.add(value, self._ref, self._n, moments.n)
            mark = (self._all.n, self._all.mean, self._all.m2)
            for arm in self._arms:
                arm.zero_at, arm.zero_time, arm.mark = self._n, t, mark
            early = self._early
            if early is not None:
                early.update(value, t)
                if early.drift_detected:
                    self._early_alarm(early)
                    return
            if self._n == self.warmup:
                self._early = None  # handed over: the lagged statistic watches at full sensitivity
                self._choose_arms()
                if self._h is None:
                    self._h, self._h_early = self._calibrated()
            return
        if len(self._pending) >= self.lag and self._pending:
            old = self._pending.popleft()
            self._ref.add(old)
            self._disp.add(old, self._ref, self._n, moments.n - self.lag)
        self._step(value, t)
        if self.lag:
            self._pending.append(value)
        else:
            self._ref.add(value)
            self._disp.add(value, self._ref, self._n, moments.n)

    def adjusted(self, x: float, t: float) -> float:
        """``x`` at event time ``t`` as this detector watches it: minus its seasonal offset (if a
        profile is in use), for stage two and the recovery check to see the same values."""
        season = self._season
        return float(x) - season.offset(t) if season is not None and season.active else float(x)

    def learn(self, x: float, t: float) -> bool:
        """Teach the profile a value stage two holds; True if it appeared or moved (``Seasonal.observe``)."""
        return self._season is not None and self._season.observe(float(x), t)

    @property
    def dispersion(self) -> float:
        """Stage one's long-run variance inflation κ (``Dispersion.kappa``), dividing each log ratio."""
        return self._disp.kappa

    @property
    def dispersion_estimate(self) -> float:
        """The point estimate of κ for the confirmation stage (``Dispersion.estimate``)."""
        return self._disp.estimate

    def confirm_kwargs(self, min_shift: float = 0.2) -> dict[str, Any]:
        """``SequentialConfirm`` keywords for this alarm: κ (``dispersion``), its variance-time
        reading before the change (``dispersion_scales``, ``Dispersion.scales``), ``min_shift``;
        after a self-starting alarm a baseline weight below 1 (its short baseline is selected by the
        alarm) and ``min_shift`` ≥ ``SELF_STARTING_MIN_SHIFT`` (it watches 1-2 sd shifts)."""
        before = self._fired.mark[0] if self._fired is not None else self._all.n
        early = self.phase == "self-starting"
        return {
            "dispersion": self._disp.estimate,
            "dispersion_scales": self._disp.scales(before),
            "baseline_weight": SELF_STARTING_BASELINE_WEIGHT if early else 1.0,
            "min_shift": max(min_shift, SELF_STARTING_MIN_SHIFT) if early else min_shift,
        }

    def _early_alarm(self, early: SelfStartingSR) -> None:
        """The warm-up's detector fired: an alarm of this detector, dated by its CUSUM's last zero."""
        mark = early.change_mark
        assert mark is not None and early.direction is not None
        fired = _Arm(early.direction, 0.0)
        fired.zero_at, fired.zero_time, fired.mark = mark
        # The moments before the change are the early detector's, which count from its (re)start:
        # LaggedSR's own count from the same point (resume passes the same baseline to both).
        self._fired = fired
        self._fired_by = ("self-starting", fired.mark[0])
        self._drift_detected = True

    def _choose_arms(self) -> None:
        """Switch off pass-rate alternatives that cannot exist at the baseline's rate.

        Near a rate of 0 or 1 a shift of so many standard deviations can leave [0, 1]: at a 0.90
        pass rate "up 0.45 sd" is 1.035. Such an arm would only be the "never fails" alternative
        again; keeping it would spend a quarter of the mixture (and of the false-alarm budget) on an
        impossible rate. The smallest shift of each direction always stays (both directions are
        watched). Decided once, at the end of the warm-up (or on resume), like the threshold."""
        if self.kind != "binary":
            return
        p = min(max(self._ref.mean, _P_FLOOR), 1 - _P_FLOOR)
        sd = math.sqrt(p * (1 - p))
        smallest = min(self.shifts)
        for arm in self._arms:
            q = p + arm.shift * sd if arm.direction == "up" else p - arm.shift * sd
            arm.off = arm.shift != smallest and not 0.0 < q < 1.0
        self._log_k = math.log(sum(1 for arm in self._arms if not arm.off))
        self._limit_for = None  # recomputed from the new arm count at the next step

    def _calibrated(self) -> tuple[float, float]:
        """(threshold, early threshold) from the table at the baseline's rate."""
        p, k, b, s = min(max(self._ref.mean, _P_FLOOR), 1 - _P_FLOOR), self.kind, self.budget, self.shifts
        return threshold_for(k, p, b, s), threshold_for(k, p, b, s, early=True)

    def _step(self, value: float, t: float) -> None:
        # The hot path (every outcome, every signal): arithmetic on locals, one exp per shift for
        # numeric values and none for pass/fail. The same recurrences as the log-scale mirror in
        # _calibrate.py, which tests/detectors checks alarm for alarm.
        if self._h is None:
            self._h, self._h_early = self._calibrated()
        h = self._h if self._n > self.warmup + EARLY_WINDOW else self._h_early
        if h != self._limit_for:
            assert h is not None
            self._limit = math.exp(self._log_k + h) if h != math.inf else math.inf
            self._limit_for = h
        m = self._ref.mean
        binary = self.kind == "binary"
        if binary:
            p = min(max(m, _P_FLOOR), 1 - _P_FLOOR)
            sd = math.sqrt(p * (1 - p))
            hit = value > 0.5
            # At a floored base rate there is no room to move that way: a stream that always
            # passes must not read each pass as evidence that the pass rate went up.
            no_up, no_down = m >= 1 - _P_FLOOR, m <= _P_FLOOR
        else:
            sd = math.sqrt(self._ref.var) or 1.0
            z = max(-5.0, min(5.0, (value - m) / sd))
        total = 0.0
        mark: tuple[int, float, float] | None = None
        inv = 1.0 / self._disp.kappa  # dependent values: each log ratio divided by κ (1 if independent)
        for arm in self._arms:
            up = arm.direction == "up"
            shift = arm.shift
            if not binary:
                ratio = math.exp((shift * (z if up else -z) - shift * shift / 2) * inv)
            elif arm.off or (no_up if up else no_down):
                ratio = 0.0
            else:
                q = p + shift * sd if up else p - shift * sd
                q = min(max(q, 1e-4), 1 - 1e-4)
                ratio = q / p if hit else (1 - q) / (1 - p)
                if inv != 1.0:
                    ratio **= inv
            r = (1.0 + arm.r) * ratio
            if r > _R_MAX:  # only with a threshold near the maximum, or inf (never alarms)
                r = _R_MAX
            arm.r = r
            total += r
            w = min(arm.w * ratio, _R_MAX)
            if w <= 1.0:
                arm.w = 1.0
                if mark is None:
                    mark = (self._all.n, self._all.mean, self._all.m2)
                arm.mark = mark
                arm.zero_at, arm.zero_time = self._n, t
            else:
                arm.w = w
        self._sum_r = total
        if total > self._limit:
            self._drift_detected = True
            # Direction and change time come from the alternative that dominates the mixture; its
            # CUSUM's last zero is where the evidence for it began to accumulate.
            self._fired = max((a for a in self._arms if not a.off), key=lambda a: a.r)
            self._fired_by = ("lagged", self._ref.n)

    def __getstate__(self) -> dict[str, Any]:
        return _pack(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        _unpack(self, state)

    def state(self) -> dict[str, Any]:
        """A small JSON-ready summary for debugging."""
        return _summary(self)


def _pack(det: LaggedSR) -> dict[str, Any]:
    # The lagged values are most of a checkpoint: packed as doubles they take 8 bytes each, not 9
    # as pickled floats, and pickle as one bytes object (fast). 0/1 values take one byte.
    state = det.__dict__.copy()
    values = array("d", det._pending)
    if det.kind == "binary" and values.count(0.0) + values.count(1.0) == len(values):
        state["_pending"] = bytes(array("B", map(int, values)))
    else:
        state["_pending"] = values
    return state


def _unpack(det: LaggedSR, state: dict[str, Any]) -> None:
    state = dict(state)
    state["_pending"] = deque(map(float, state["_pending"]))
    det.__dict__.update(state)
    if "_h_early" not in state:  # snapshots before the early threshold: theirs holds throughout
        det._h_early = det._h
        det._limit_for = det._h if det._limit != math.inf else None
    if "_disp" not in state:  # snapshots before the dispersion estimate: start it now
        det.dependence = True
        det._disp = Dispersion(det.kind, det.warmup)
    if "self_start" not in state:
        # Snapshots before the self-starting phase: a detector restored mid-warm-up gets one,
        # resumed from its warm-up so far (the observations it saw are its baseline).
        det.self_start = True
        det._fired_by = ("lagged", det._ref.n)
        det._early = det._new_early()
        if det._early is not None:
            if det.warming_up:
                det._early.resume(det._all.n, det._all.mean, det._all.m2)
            else:
                det._early = None
    if "_season" not in state:  # snapshots before the seasonal baseline: learn a profile from now on
        det.seasonal = True
        det._season = Seasonal(det.lag) if det.kind == "numeric" else None
    det._disp.early = det._early


def _summary(det: LaggedSR) -> dict[str, Any]:
    return {
        "n": det._n,
        "baseline_mean": det._ref.mean,
        "baseline_n": det._ref.n,
        "threshold": det._h,
        "statistic": round(det.statistic, 4),
        "alternatives": {f"{a.direction}{a.shift}": round(a.log_r, 4) for a in det._arms},
    }


def season_of(det: LaggedSR) -> Seasonal | None:
    """The detector's seasonal profile (None: switched off, or a pass/fail stream)."""
    return det._season
