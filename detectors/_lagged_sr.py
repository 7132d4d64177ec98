"""A two-sided mixture Shiryaev–Roberts detector against a lagged baseline, in River's detector form."""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

from river.base import DriftDetector

from driftwatch._stats import Moments
from driftwatch.detectors._self_starting import SelfStartingSR
from driftwatch.detectors._thresholds import threshold_for

__all__ = ["DEFAULT_LAG", "DEFAULT_SHIFTS", "DEFAULT_WARMUP", "LaggedSR"]

#: Shift sizes the mixture covers, in standard deviations of the watched value. A pass rate falling
#: 0.51 → 0.38 is 0.26 sd; 0.90 → 0.765 is 0.45 sd; +30% latency at a log-sd of 0.5 is 0.52 sd.
DEFAULT_SHIFTS: tuple[float, ...] = (0.3, 0.45)
#: Observations that estimate the baseline before detection starts.
DEFAULT_WARMUP = 500
#: The most recent observations kept out of the baseline, so that a change does not leak into it.
DEFAULT_LAG = 300

#: Values per batch of the long-run variance estimate (see ``LaggedSR.dispersion``).
DISPERSION_BATCH = 50
#: Values per block of the AR(1)-on-block-means reading of κ (see ``LaggedSR._update_kappa``).
DISPERSION_BLOCK = 10
#: The stage-one inflation is the estimate's lower confidence bound at this level: on independent
#: values it stays exactly 1 in 95% of streams, so the iid delays do not pay for the estimate.
_DISPERSION_CONFIDENCE = 1.645
#: Batch pairs of prior weight at 1 in the (point) inflation given to the confirmation stage.
_DISPERSION_PRIOR = 4.0
_DISPERSION_MAX = 50.0
#: Baseline weight for confirming a self-starting alarm (``SequentialConfirm.baseline_weight``): its
#: false alarms select a short baseline that lies away from the alarm (1.1 standard errors on
#: average), which at weight 1 confirmed 21-27% of them; 0.5 confirms ~10% (benchmarks/production.py).
SELF_STARTING_BASELINE_WEIGHT = 0.5

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

    The threshold comes from a table calibrated by simulation under no change (``make calibrate``)
    per base rate, so that the detector raises at most one false alarm per ``1 / budget``
    observations, both on average over 10,000 observations and in the first 500 after the warm-up,
    when the baseline is least certain. The change-time estimate is the last zero of a CUSUM over
    the same likelihood ratios, for the alternative that dominates the statistic.

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
        observations so far, its own thresholds calibrated from the first observation at
        ``budget``) that hands over at the end of the warm-up. Large changes are then caught from
        about the 20th observation; the warm-up is where full sensitivity is reached. Off when a
        ``threshold`` is given (that threshold is the lagged statistic's only).
    dependence
        Estimate the long-run variance inflation κ of the stream (batch means, ``dispersion``) and
        divide every log likelihood ratio by it, so that bursts, batches of easy and hard tasks and
        autocorrelation do not read as changes. Off: the values are taken as independent.

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
        self._init_dispersion()
        self._reset()

    def _init_dispersion(self) -> None:
        # Long-run variance by batch means, kept across resets (dependence is the stream's, not the
        # level's): the current batch's sum and count, the previous batch's mean (None at a reset:
        # no difference across a change), and the sum and count of B·(difference)² / (2 var).
        self._b_sum = 0.0
        self._b_count = 0
        self._b_last: float | None = None
        self._d_sum = 0.0
        self._d_count = 0
        self._kappa = 1.0  # stage one's inflation (the lower bound); 1 until dependence shows
        # Lag-1 autocorrelation of the same values (count, sums, sum of squares, sum of products of
        # neighbours, the previous value or None after a reset): an AR(1) reading of κ that is
        # available long before enough batches are (bursts and AR noise show in tens of values).
        self._a = [0.0, 0.0, 0.0, 0.0, 0.0]  # pairs, Σx_{t-1}, Σx_t, Σx_{t-1}², Σx_t x_{t-1}
        self._a_sq = 0.0  # Σx_t²
        self._a_last: float | None = None
        # Block means of DISPERSION_BLOCK values: the running block, the current chain (since the
        # last reset) as [count, Σy, Σy², pairs, Σy_prev, Σy_next, Σy_prev y_next, last y], and the
        # finished chains pooled around their own means as [Σ squares, df, Σ products, pairs].
        self._k_sum = 0.0
        self._k_count = 0
        self._chain = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        self._pool = [0.0, 0.0, 0.0, 0.0]

    def _new_early(self) -> SelfStartingSR | None:
        if not self.self_start or self.threshold is not None:
            return None
        return SelfStartingSR(kind=self.kind, budget=self.budget, handover=self.warmup)

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._ref = Moments()
        self._pending: deque[float] = deque()
        self._all = Moments()
        self._arms = [_Arm(d, s) for s in self.shifts for d in ("up", "down")]
        self._log_k = math.log(len(self._arms))
        self._sum_r = 0.0  # the arms' R added up; the statistic is log(sum / arms on)
        self._limit = math.inf  # sum_r above this is an alarm: arms on · exp(threshold)
        self._fired: _Arm | None = None
        self._h: float | None = self.threshold
        # The warm-up's own detector (None once handed over, or when off), and how the last alarm was
        # raised: (phase, observations in its baseline) for the alert's evidence.
        self._early = self._new_early()
        self._fired_by: tuple[str, int] = ("lagged", 0)
        self._b_sum, self._b_count, self._b_last = 0.0, 0, None
        self._a_last = None
        if hasattr(self, "_chain"):
            self._end_chain()
        if self._early is not None:
            self._early.dispersion = self._kappa

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
        return self._h

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
            "dispersion": round(self._kappa, 3),
            "dispersion_estimate": round(self.dispersion_estimate, 3),
        }
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
        self._reset()
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
                self._h = self._calibrated()

    # -- updating ------------------------------------------------------------------------------
    def update(self, x: float, t: float = 0.0) -> None:
        """Feed one observation, with its event time ``t`` for the change-time estimate."""
        if self._drift_detected:
            self._reset()
        value = float(x)
        self._n += 1
        moments = self._all  # Moments.add, inlined: this runs for every outcome and signal
        moments.n += 1
        delta = value - moments.mean
        moments.mean += delta / moments.n
        moments.m2 += delta * (value - moments.mean)
        if self._n <= self.warmup:
            self._ref.add(value)
            self._batch(value)
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
                    self._h = self._calibrated()
            return
        if len(self._pending) >= self.lag and self._pending:
            old = self._pending.popleft()
            self._ref.add(old)
            self._batch(old)
        self._step(value, t)
        if self.lag:
            self._pending.append(value)
        else:
            self._ref.add(value)
            self._batch(value)

    def _batch(self, value: float) -> None:
        """A value entering the baseline into the estimates of the long-run variance (``_update_kappa``):
        per value only sums; the readings are refreshed per block of ``DISPERSION_BLOCK`` values."""
        if not self.dependence:
            return
        last = self._a_last
        self._a_last = value
        if last is not None:
            a = self._a
            a[0] += 1
            a[1] += last
            a[2] += value
            a[3] += last * last
            a[4] += value * last
            self._a_sq += value * value
        self._k_sum += value
        self._k_count += 1
        if self._k_count == DISPERSION_BLOCK:
            y = self._k_sum / DISPERSION_BLOCK
            self._k_sum, self._k_count = 0.0, 0
            self._block(y)
            self._b_sum += y
            self._b_count += DISPERSION_BLOCK
            if self._b_count >= DISPERSION_BATCH:
                self._batch_done()

    def _batch_done(self) -> None:
        """Batch means: successive batch means differ by ``b_i - b_{i-1}``, whose variance is
        ``2 κ var / B`` for a stationary stream with long-run variance ``κ var``: one level change
        spoils one difference, not the estimate (no difference is taken across a reset). The
        values' variance is the baseline's (pass/fail: ``p (1 - p)`` at its rate)."""
        mean = self._b_sum * DISPERSION_BLOCK / self._b_count
        self._b_sum, self._b_count = 0.0, 0
        last, self._b_last = self._b_last, mean
        if last is None:
            return
        if self.kind == "binary":
            p = min(max(self._ref.mean, _P_FLOOR), 1 - _P_FLOOR)
            var = p * (1 - p)
        else:
            var = self._ref.var
        if not var > 0:
            return
        self._d_sum += DISPERSION_BATCH * (mean - last) ** 2 / (2 * var)
        self._d_count += 1

    def _block(self, y: float) -> None:
        c = self._chain
        if c[0] > 0:
            c[3] += 1
            c[4] += c[7]
            c[5] += y
            c[6] += c[7] * y
        c[0] += 1
        c[1] += y
        c[2] += y * y
        c[7] = y
        # Refreshed every 2 blocks while the warm-up's detector needs it early, every 10 after.
        if int(c[0]) % (2 if self._n <= self.warmup else 10) == 0:
            self._update_kappa()

    def _end_chain(self) -> None:
        """Fold the current chain of block means into the pool (around its own mean: a reset is
        usually a change of level, which must not read as variance)."""
        c, pool = self._chain, self._pool
        if c[0] >= 2:
            pool[0] += c[2] - c[1] * c[1] / c[0]
            pool[1] += c[0] - 1
        if c[3] >= 2:
            pool[2] += c[6] - c[4] * c[5] / c[3]
            pool[3] += c[3] - 1
        self._chain = [0.0] * 8
        self._k_sum, self._k_count = 0.0, 0

    def _block_kappa(self) -> float:
        """κ from block means (lower bound): the block means' variance over the values' variance
        (times the block size), times the AR(1) factor of their lag-1 autocorrelation. Bursts and
        AR noise show in the first factor, batches of easy and hard tasks (runs of tens of values)
        in both; independent values give 1 · 1."""
        c, pool = self._chain, self._pool
        ss, df, cov, pairs = pool
        if c[0] >= 2:
            ss += c[2] - c[1] * c[1] / c[0]
            df += c[0] - 1
        if c[3] >= 2:
            cov += c[6] - c[4] * c[5] / c[3]
            pairs += c[3] - 1
        if df < 10:
            return 1.0
        if self.kind == "binary":
            p = min(max(self._ref.mean, _P_FLOOR), 1 - _P_FLOOR)
            var = p * (1 - p)
        else:
            var = self._ref.var
        if not var > 0 or not ss > 0:
            return 1.0
        ratio = DISPERSION_BLOCK * (ss / df) / var
        c2 = 2 / (9 * df)
        ratio /= max(1.0, (1 - c2 + _DISPERSION_CONFIDENCE * math.sqrt(c2)) ** 3)
        r = cov / pairs / (ss / df) if pairs >= 2 else 0.0
        low = min(r - _DISPERSION_CONFIDENCE / math.sqrt(max(pairs, 1.0)), 0.9)
        return ratio * ((1 + low) / (1 - low) if low > 0 else 1.0)

    def _lag1(self) -> tuple[float, float]:
        """(lag-1 autocorrelation, its standard error under independence) of the baseline's values."""
        n, sx, sy, sxx, sxy = self._a
        if n < 10:
            return 0.0, math.inf
        vx, vy = sxx - sx * sx / n, self._a_sq - sy * sy / n
        if not (vx > 0 and vy > 0):
            return 0.0, math.inf
        return (sxy - sx * sy / n) / math.sqrt(vx * vy), 1 / math.sqrt(n)

    def _update_kappa(self) -> None:
        batch = self._kappa_estimate() / self._chi2_ratio()
        r, se = self._lag1()
        low = min(r - _DISPERSION_CONFIDENCE * se, 0.9)
        ar = (1 + low) / (1 - low) if low > 0 else 1.0
        self._kappa = min(_DISPERSION_MAX, max(1.0, batch, ar, self._block_kappa()))
        if self._early is not None:
            self._early.dispersion = self._kappa

    def _kappa_estimate(self) -> float:
        return self._d_sum / self._d_count if self._d_count else 1.0

    def _df(self) -> float:
        # Squared successive differences overlap: their mean has about 2m²/(3m - 1) degrees of freedom
        # for m differences of independent batch means (von Neumann), not m.
        m = self._d_count
        return 2 * m * m / (3 * m - 1) if m else 0.0

    def _chi2_ratio(self) -> float:
        """Upper 95% point of χ²_df / df (Wilson–Hilferty): the estimate's lower bound divides by it."""
        df = self._df()
        if df <= 0:
            return math.inf
        c = 2 / (9 * df)
        return max(1.0, (1 - c + _DISPERSION_CONFIDENCE * math.sqrt(c)) ** 3)

    @property
    def dispersion(self) -> float:
        """Stage one's long-run variance inflation κ: each likelihood ratio's log is divided by it.

        The lower 95% confidence bound of the batch-means estimate (batches of ``DISPERSION_BATCH``
        values entering the baseline), at least 1: 1 on independent values in 95% of streams.
        """
        return self._kappa

    @property
    def dispersion_estimate(self) -> float:
        """The point estimate of κ, shrunk towards 1 by a prior of a few batch pairs, at least 1:
        the inflation the confirmation stage should use (``confirm_kwargs``)."""
        df = self._df()
        batch = (df * self._kappa_estimate() + _DISPERSION_PRIOR) / (df + _DISPERSION_PRIOR)
        # The lag-1 reading enters at its lower bound, as in stage one: a step in the baseline (a
        # change inside a short warm-up) looks like autocorrelation, and must not slow its page.
        return min(_DISPERSION_MAX, max(self._kappa, batch))

    def confirm_kwargs(self) -> dict[str, float]:
        """Keyword arguments for ``SequentialConfirm`` that this alarm calls for: the stream's
        dispersion, and a smaller baseline weight when the alarm came from the self-starting phase
        (its short baseline is selected by the alarm)."""
        weight = SELF_STARTING_BASELINE_WEIGHT if self.phase == "self-starting" else 1.0
        return {"dispersion": self.dispersion_estimate, "baseline_weight": weight}

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
        impossible rate. The smallest shift of each direction always stays, so both directions are
        watched. Decided once, at the end of the warm-up (or on resume), like the threshold.
        """
        if self.kind != "binary":
            return
        p = min(max(self._ref.mean, _P_FLOOR), 1 - _P_FLOOR)
        sd = math.sqrt(p * (1 - p))
        smallest = min(self.shifts)
        for arm in self._arms:
            q = p + arm.shift * sd if arm.direction == "up" else p - arm.shift * sd
            arm.off = arm.shift != smallest and not 0.0 < q < 1.0
        self._log_k = math.log(sum(1 for arm in self._arms if not arm.off))
        self._limit = math.inf  # recomputed from the new arm count at the next step

    def _calibrated(self) -> float:
        base = min(max(self._ref.mean, _P_FLOOR), 1 - _P_FLOOR)
        return threshold_for(self.kind, base, self.budget, self.shifts)

    def _step(self, value: float, t: float) -> None:
        # The hot path (every outcome, every signal): arithmetic on locals, one exp per shift for
        # numeric values and none for pass/fail. The same recurrences as the log-scale mirror in
        # _calibrate.py, which tests/detectors checks alarm for alarm.
        if self._h is None:
            self._h = self._calibrated()
        if self._limit == math.inf and self._h != math.inf:
            self._limit = math.exp(self._log_k + self._h)
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
        inv = 1.0 / self._kappa  # dependent values: every log ratio divided by κ (1 when independent)
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
        # The lagged values are most of a checkpoint: packed as doubles they take 8 bytes each, not 9
        # as pickled floats, and pickle as one bytes object (fast). 0/1 values take one byte.
        state = self.__dict__.copy()
        values = array("d", self._pending)
        if self.kind == "binary" and values.count(0.0) + values.count(1.0) == len(values):
            state["_pending"] = bytes(array("B", map(int, values)))
        else:
            state["_pending"] = values
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["_pending"] = deque(map(float, state["_pending"]))
        self.__dict__.update(state)
        if "_kappa" not in state:  # snapshots before the dispersion estimate: start it now
            self.dependence = True
            self._init_dispersion()
        if "_chain" not in state:
            self._k_sum, self._k_count = 0.0, 0
            self._chain, self._pool = [0.0] * 8, [0.0, 0.0, 0.0, 0.0]
        if "self_start" not in state:
            # Snapshots before the self-starting phase: a detector restored mid-warm-up gets one,
            # resumed from its warm-up so far (the observations it saw are its baseline).
            self.self_start = True
            self._fired_by = ("lagged", self._ref.n)
            self._early = self._new_early()
            if self._early is not None:
                if self.warming_up:
                    self._early.resume(self._all.n, self._all.mean, self._all.m2)
                else:
                    self._early = None

    def state(self) -> dict[str, Any]:
        """A small JSON-ready summary for debugging."""
        return {
            "n": self._n,
            "baseline_mean": self._ref.mean,
            "baseline_n": self._ref.n,
            "threshold": self._h,
            "statistic": round(self.statistic, 4),
            "alternatives": {f"{a.direction}{a.shift}": round(a.log_r, 4) for a in self._arms},
        }
