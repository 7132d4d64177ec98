"""A self-starting change detector for the first observations of a stream, in River's form.

``LaggedSR`` estimates its baseline from a 500-observation warm-up and detects nothing before it.
``SelfStartingSR`` covers observations 1-500: every new value is scored against the *posterior
predictive* distribution given the observations before it, so no baseline has to be known.

* pass/fail: Beta-Binomial predictive (Jeffreys prior): the next value passes with probability
  ``p̂ = (passes + ½) / (n + 1)``; an alternative moves that probability by ``δ`` standard
  deviations, ``q = p̂ ± δ √(p̂ (1 - p̂))``, and the likelihood ratio is ``q / p̂`` or
  ``(1 - q) / (1 - p̂)``.
* numeric (log latency, log tokens): Normal-Gamma with the reference prior, whose predictive is a
  Student-t: ``T = (x - mean) / (sd · √(1 + 1/n))`` has ``n - 1`` degrees of freedom under no change
  whatever the true mean and spread, so the statistic's null distribution does not depend on them
  (calibration on N(0, 1) holds for every Gaussian stream). The likelihood ratio of a shift of ``δ``
  is ``f_t(T - δ) / f_t(T)``; it is bounded in ``T``, so a single outlier is little evidence while the
  spread is uncertain (heavy tails are cheap to ignore early).

For each alternative (shifts up and down) a Shiryaev–Roberts statistic ``R ← (1 + R) · LR`` is
kept; the detector fires when their average exceeds ``exp(h(n))``, with ``h(n)`` a threshold per
block of observation counts, calibrated by simulation (``python -m driftwatch.detectors._self_starting
--calibrate``) so that the *first-alarm hazard* — false alarms per observation among streams that
have not alarmed yet — is at most the budget in every block, from the first observation on. For
pass/fail the threshold of a block is the largest over base rates 0.02-0.98 (the rate is not known
this early), so the budget holds for every base rate.

The baseline is every observation before the latest ``lag`` (default 10; 0 would be Hawkins'
recursive residuals); a change leaks into it after that, which is why this detector is for large changes
early and hands over to ``LaggedSR`` (at full sensitivity for small ones) at ``handover``.

Alternatives compared by ``python -m driftwatch.detectors._self_starting --compare`` (the numbers
are in ``docs/drafts/production.md``): the self-starting CUSUM of Hawkins (1987) on the standardised
recursive residuals (mapped to N(0, 1) through the t distribution), the same residuals in a mixture
Shiryaev–Roberts, and the predictive likelihood ratio above.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from river.base import DriftDetector

__all__ = ["DEFAULT_LAG", "SELF_STARTING_SHIFTS", "SelfStartingSR", "statistic_paths"]

Kind = Literal["binary", "numeric"]
FloatArray = NDArray[np.float64]

#: Shift sizes in standard deviations (of the pass/fail or log value) that the early mixture covers:
#: 0.85 → 0.45 is 1.1 sd; output tokens ×2.5 at a log-sd of 0.5 is 1.8 sd.
SELF_STARTING_SHIFTS: tuple[float, ...] = (1.0, 2.0)
#: First observation count (1-based) of each threshold block; the last block ends at the handover.
BLOCKS: tuple[int, ...] = (1, 10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400)
#: Observations before the first value is scored: the predictive needs a spread (numeric) or a few
#: values (pass/fail) before one value can be evidence.
MIN_BASELINE = {"binary": 5, "numeric": 4}
PRIOR = 0.5  # Jeffreys Beta(½, ½)
#: Latest observations kept out of the baseline. With 0 (Hawkins' recursive residuals) every
#: post-change value joins the baseline at once and dilutes the evidence: 0.85 → 0.45 at observation
#: 40 took a median 42 observations with lag 0, 32 with lag 10, 33 with lag 25 (benchmarks/self_starting.py).
DEFAULT_LAG = 10
_Q_CLIP = (0.005, 0.995)
#: Studentised residuals are held within ±T_CLAMP before scoring: one 30× timeout (7 sd on a
#: log-sd of 0.5) would otherwise be ~10 nats for the 2-sd alternative, and two within the lag an
#: alarm (benchmarks/production.py, heavy tails: 13 suspicions per 10k in observations 1-500). At 3
#: it is at most 4 nats; a 1.8-sd change (tokens ×2.5) rarely reaches the clamp.
T_CLAMP = 3.0

#: Calibrated thresholds (log of the mixture statistic) per block, budget 1e-4, lag 10, shifts (1, 2):
#: filled by ``--calibrate`` (seed, streams and the worst base rate in CALIBRATION below).
THRESHOLDS: dict[str, tuple[float, ...]] = {
    "binary": (0.01, 6.87, 13.17, 13.86, 12.48, 11.05, 10.69, 10.19, 9.87, 9.48, 9.29, 9.27),
    "numeric": (0.01, 8.75, 14.42, 13.44, 12.7, 11.03, 10.42, 9.58, 9.26, 8.99, 8.79, 8.76),
}
#: How THRESHOLDS were made: ``python -m driftwatch.detectors._self_starting --kind binary|numeric
#: --lag 10 --streams 30000`` (seed 20261201, 30,000 no-change streams of 500 per base rate, hazard
#: within 0.9 of the budget per block; pass/fail: the largest over base rates 0.02, 0.05, 0.1, 0.2,
#: 0.3, 0.5; 0.3-0.5 set it, 0.02 would allow 2-7 less in blocks 10-40). No value is scored before
#: observation 15 (the lag plus a baseline of 4-5), so the first block's threshold is never used.
CALIBRATION: dict[str, Any] = {"seed": 20261201, "streams": 30_000, "lag": 10, "margin": 0.9}
_CALIBRATED_BUDGET = 1e-4


def _block(n: int) -> int:
    """Index of the threshold block of the ``n``-th observation (1-based)."""
    b = 0
    while b + 1 < len(BLOCKS) and n >= BLOCKS[b + 1]:
        b += 1
    return b


def _log_t_ratio(t: float, delta: float, df: float) -> float:
    """log f_t(t - delta) / f_t(t) for a Student-t with ``df`` degrees of freedom."""
    return -(df + 1) / 2 * (math.log1p((t - delta) ** 2 / df) - math.log1p(t * t / df))


class SelfStartingSR(DriftDetector):
    """Self-starting two-sided detector: predictive likelihood ratios in a mixture Shiryaev–Roberts.

    Parameters
    ----------
    kind
        ``"binary"`` for pass/fail (0/1), ``"numeric"`` for values on a roughly Gaussian scale.
    shifts
        Alternatives in standard deviations (up and down each).
    budget
        False alarms per observation; the calibrated thresholds are moved by ``log(1e-4 / budget)``.
    lag
        Most recent observations kept out of the baseline (0: all previous observations).
    handover
        Observation count at which this detector stops (``active`` turns False): ``LaggedSR`` ends its
        warm-up there and watches at full sensitivity.
    thresholds
        Per-block thresholds (log scale) to use instead of the calibrated ones.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> det = SelfStartingSR(kind="binary")
    >>> stream = [rng.random() < 0.85 for _ in range(40)] + [rng.random() < 0.45 for _ in range(200)]
    >>> for i, passed in enumerate(stream):
    ...     det.update(passed)
    ...     if det.drift_detected:
    ...         print(f"{det.direction} at observation {i + 1}, baseline from {det.baseline_n}")
    ...         break
    down at observation 54, baseline from 43
    """

    #: Class defaults for detectors pickled before the resume accounting existed.
    _scored = 0
    _resumed = False

    def __init__(
        self,
        kind: Kind = "numeric",
        shifts: Sequence[float] = SELF_STARTING_SHIFTS,
        budget: float = 1e-4,
        lag: int = DEFAULT_LAG,
        handover: int = 500,
        thresholds: Sequence[float] | None = None,
    ) -> None:
        if kind not in ("binary", "numeric"):
            raise ValueError(f"kind must be 'binary' or 'numeric', got {kind!r}")
        if not shifts or any(s <= 0 for s in shifts):
            raise ValueError(f"shifts must be positive sizes in standard deviations, got {list(shifts)!r}")
        if not 0 < budget < 1:
            raise ValueError(f"budget is false alarms per observation, between 0 and 1; got {budget}")
        if thresholds is not None and len(thresholds) != len(BLOCKS):
            raise ValueError(f"thresholds needs one value per block ({len(BLOCKS)}), got {len(thresholds)}")
        if thresholds is None and (lag != DEFAULT_LAG or tuple(shifts) != SELF_STARTING_SHIFTS):
            raise ValueError("the shipped thresholds are for the default lag and shifts; pass thresholds")
        super().__init__()
        self.kind = kind
        self.shifts = tuple(shifts)
        self.budget = budget
        self.lag = lag
        self.handover = handover
        self.thresholds = tuple(thresholds) if thresholds is not None else None
        table = self.thresholds or THRESHOLDS[kind]
        extra = math.log(_CALIBRATED_BUDGET / budget) if thresholds is None else 0.0
        self._h = tuple(h + extra for h in table)
        #: Long-run variance inflation: every log ratio is divided by it (``LaggedSR`` sets it).
        self.dispersion = 1.0
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._values: deque[float] = deque()  # the latest ``lag`` values, not yet in the baseline
        self._k = 0  # observations in the baseline
        self._sum = 0.0
        self._mean = 0.0
        self._m2 = 0.0
        self._r = [0.0] * (2 * len(self.shifts))
        self._stat = -math.inf
        self._fired: int | None = None
        self._baseline_at_fire = 0
        self._scored = 0  # values scored since the start or the last resume
        self._resumed = False  # baseline given by ``resume``, held until ``lag`` values are pending
        # For the change-time estimate, as LaggedSR: per alternative a CUSUM of the same log ratios,
        # the observation count and event time at its last zero, and the moments of every
        # observation up to it (count, mean, m2; ``_all`` holds them for every observation).
        self._all = (0, 0.0, 0.0)
        self._cusum = [0.0] * len(self._r)
        self._zero: list[tuple[int, float, tuple[int, float, float]]] = [(0, 0.0, self._all)] * len(self._r)

    # -- results -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self._n

    @property
    def active(self) -> bool:
        """Whether this detector still watches (before the handover to the lagged detector)."""
        return self._n < self.handover

    @property
    def statistic(self) -> float:
        return self._stat

    @property
    def threshold_used(self) -> float:
        return self._threshold()

    def _threshold(self) -> float:
        # The thresholds were calibrated from a fresh start, where the n-th value is the
        # (n - lag - MIN_BASELINE + 1)-th scored, against a baseline of n - lag that grows by one
        # with every value. After ``resume`` scoring starts at once against a baseline that stays
        # put until ``lag`` values are pending, so: the block is the later of the one for a
        # baseline this large and the one for this many values scored, and while the baseline is
        # held the highest threshold of the table applies. By the count alone, a page resumed from
        # 7 fresh values sat in the first block (0.01, never used from a fresh start) and a stream
        # staying at 0% after a fall paged again, "0.0% -> 0.0%", after 2 observations; without
        # the hold, 22 of 2,000 no-change streams at 0.5 resumed from 7 values alarmed within 30
        # (mostly on their 5th value, after a lopsided baseline), against 2 from a fresh start.
        scored = self._scored + self.lag + MIN_BASELINE[self.kind] - 1
        h = self._h[_block(max(self._n, self._k + self.lag, scored, 1))]
        if self._resumed and len(self._values) < self.lag:
            return max(h, max(self._h))
        return h

    @property
    def direction(self) -> str | None:
        if self._fired is None:
            return None
        return "up" if self._fired % 2 == 0 else "down"

    @property
    def baseline_n(self) -> int:
        """Observations the baseline held when the detector last fired (for the alert's message)."""
        return self._baseline_at_fire

    @property
    def baseline_mean(self) -> float:
        return self._mean

    @property
    def baseline_moments(self) -> tuple[int, float, float]:
        """(count, mean, m2) of the current baseline (every observation but the latest ``lag``)."""
        return self._k, self._mean, self._m2

    @property
    def observed(self) -> tuple[int, float, float]:
        """(count, mean, m2) of every observation since the reset (or resume)."""
        return self._all

    @property
    def change_mark(self) -> tuple[int, float, tuple[int, float, float]] | None:
        """After an alarm: the CUSUM's last zero for the alternative that fired (observation count,
        event time, moments of the observations up to it); the change began after it."""
        return None if self._fired is None else self._zero[self._fired]

    def resume(self, n: int, mean: float, m2: float, t: float = 0.0) -> None:
        """Start afresh with a baseline of ``n`` observations (``mean``, ``m2``) and no pending values:
        after a withdrawn alarm, the baseline stands and the statistic restarts at zero."""
        self._reset()
        self._resumed = True
        self._n = self._k = n
        self._mean, self._m2 = mean, m2
        self._sum = mean * n
        self._all = (n, mean, m2)
        self._zero = [(n, t, self._all)] * len(self._r)

    # -- updating ------------------------------------------------------------------------------
    def update(self, x: float, t: float = 0.0) -> None:
        """Feed one observation, with its event time ``t`` for the change-time estimate."""
        if self._drift_detected:
            self._reset()
        value = float(x)
        self._n += 1
        n, mean, m2 = self._all
        n += 1
        delta = value - mean
        mean += delta / n
        self._all = (n, mean, m2 + delta * (value - mean))
        if self._n <= self.handover and self._k >= MIN_BASELINE[self.kind]:
            self._step(value, t)
        else:
            self._zero = [(self._n, t, self._all)] * len(self._r)
        if self.lag:
            self._values.append(value)
            if len(self._values) > self.lag:
                self._add(self._values.popleft())
        else:
            self._add(value)

    def _add(self, value: float) -> None:
        self._k += 1
        delta = value - self._mean
        self._mean += delta / self._k
        self._m2 += delta * (value - self._mean)

    def _log_ratios(self, value: float) -> list[float]:
        k = self._k
        out: list[float] = []
        if self.kind == "binary":
            p = (self._mean * k + PRIOR) / (k + 2 * PRIOR)
            sd = math.sqrt(p * (1 - p))
            hit = value > 0.5
            for shift in self.shifts:
                for sign in (1.0, -1.0):
                    q = min(max(p + sign * shift * sd, _Q_CLIP[0]), _Q_CLIP[1])
                    out.append(math.log(q / p) if hit else math.log((1 - q) / (1 - p)))
            return out
        df = k - 1
        s = math.sqrt(self._m2 / df) if self._m2 > 0 else 1.0
        t = max(-T_CLAMP, min(T_CLAMP, (value - self._mean) / (s * math.sqrt(1 + 1 / k))))
        for shift in self.shifts:
            out.append(_log_t_ratio(t, shift, df))
            out.append(_log_t_ratio(t, -shift, df))
        return out

    def _step(self, value: float, t: float = 0.0) -> None:
        self._scored += 1
        total = 0.0
        inv = 1.0 / self.dispersion
        for j, llr in enumerate(self._log_ratios(value)):
            llr *= inv
            r = (1.0 + self._r[j]) * math.exp(max(llr, -700.0))
            self._r[j] = min(r, 1e300)
            total += self._r[j]
            c = self._cusum[j] + llr
            if c <= 0.0:
                self._cusum[j] = 0.0
                self._zero[j] = (self._n, t, self._all)
            else:
                self._cusum[j] = c
        self._stat = math.log(total / len(self._r)) if total > 0 else -math.inf
        if self._stat > self._threshold():
            self._drift_detected = True
            self._fired = max(range(len(self._r)), key=self._r.__getitem__)
            self._baseline_at_fire = self._k

    def state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "baseline_n": self._k,
            "baseline_mean": self._mean,
            "statistic": round(self._stat, 4) if math.isfinite(self._stat) else None,
            "threshold": round(self.threshold_used, 4),
        }


# -- vectorised mirror, calibration and comparison ------------------------------------------------
Method = Literal["pred-sr", "z-sr", "z-cusum"]


def statistic_paths(
    data: FloatArray,
    *,
    kind: str,
    method: Method = "pred-sr",
    shifts: Sequence[float] = SELF_STARTING_SHIFTS,
    lag: int = DEFAULT_LAG,
    length: int | None = None,
) -> NDArray[np.float32]:
    """The log statistic after each observation (streams × observations; -inf before scoring).

    ``pred-sr`` mirrors ``SelfStartingSR``. ``z-sr`` and ``z-cusum`` score the standardised recursive
    residual ``u`` (numeric: the t residual mapped to N(0, 1) through its cdf, Hawkins' self-starting
    CUSUM; pass/fail: ``(x - p̂) / √(p̂ (1 - p̂) (1 + 1/(n + 1)))``) with Gaussian likelihood ratios
    ``δ u - δ² / 2``, in a mixture Shiryaev–Roberts or as the largest of one-sided CUSUMs.
    """
    from scipy import stats  # type: ignore[import-untyped]

    rows, cols = data.shape
    cols = min(cols, length or cols)
    sizes = np.repeat(np.asarray(shifts, dtype=np.float64), 2)
    signs = np.tile(np.array([1.0, -1.0]), len(shifts))
    deltas = sizes * signs
    stat = np.full((rows, len(sizes)), -np.inf if method != "z-cusum" else 0.0)
    out = np.full((rows, cols), -np.inf, dtype=np.float32)
    csum = np.concatenate([np.zeros((rows, 1)), np.cumsum(data, axis=1)], axis=1)
    csum2 = np.concatenate([np.zeros((rows, 1)), np.cumsum(data * data, axis=1)], axis=1)
    log_k = math.log(len(sizes))
    for t in range(cols):
        k = t - lag  # baseline: observations 0 .. k-1
        if k < MIN_BASELINE[kind]:
            continue
        x = data[:, t]
        mean = csum[:, k] / k
        if kind == "binary":
            p = (csum[:, k] + PRIOR) / (k + 2 * PRIOR)
            sd = np.sqrt(p * (1 - p))
            if method == "pred-sr":
                q = np.clip(p[:, None] + deltas * sd[:, None], *_Q_CLIP)
                hit = (x > 0.5)[:, None]
                llr = np.where(hit, np.log(q / p[:, None]), np.log((1 - q) / (1 - p[:, None])))
            else:
                u = (x - p) / (sd * math.sqrt(1 + 1 / (k + 1)))
                llr = deltas * u[:, None] - sizes * sizes / 2
        else:
            df = k - 1
            var = np.maximum(csum2[:, k] - k * mean * mean, 0.0) / df
            s = np.sqrt(var)
            s[s == 0] = 1.0
            tt = np.clip((x - mean) / (s * math.sqrt(1 + 1 / k)), -T_CLAMP, T_CLAMP)
            if method == "pred-sr":
                llr = (
                    -(df + 1)
                    / 2
                    * (np.log1p((tt[:, None] - deltas) ** 2 / df) - np.log1p(tt * tt / df)[:, None])
                )
            else:
                u = stats.norm.isf(stats.t.sf(tt, df))
                u = np.clip(u, -8.0, 8.0)
                llr = deltas * u[:, None] - sizes * sizes / 2
        if method == "z-cusum":
            np.maximum(stat + llr, 0.0, out=stat)
            out[:, t] = stat.max(axis=1)
        else:
            stat = np.logaddexp(stat, 0.0) + llr
            out[:, t] = np.logaddexp.reduce(stat, axis=1) - log_k
    return out


def block_maxima(paths: NDArray[np.float32], handover: int = 500) -> FloatArray:
    """The statistic's largest value per stream within each threshold block (streams × blocks)."""
    edges = [*BLOCKS, handover + 1]
    out = np.full((paths.shape[0], len(BLOCKS)), -np.inf)
    for b in range(len(BLOCKS)):
        lo, hi = edges[b] - 1, min(edges[b + 1] - 1, paths.shape[1])
        if hi > lo:
            out[:, b] = paths[:, lo:hi].max(axis=1)
    return out


def calibrate_blocks(
    maxima: FloatArray, budget: float = 1e-4, margin: float = 0.9, handover: int = 500
) -> tuple[list[float], list[float]]:
    """Per block, the smallest threshold whose first-alarm hazard (alarms in the block among streams
    that had not alarmed before it, over their observations in the block) is at most
    ``margin · budget``; blocks are set in order, each given the thresholds before it."""
    edges = [*BLOCKS, handover + 1]
    alive = np.ones(maxima.shape[0], dtype=bool)
    thresholds: list[float] = []
    hazards: list[float] = []
    for b in range(len(BLOCKS)):
        width = edges[b + 1] - edges[b]
        col = np.sort(maxima[alive, b])[::-1]
        allowed = int(margin * budget * width * alive.sum())  # alarms the block may have
        h = float(col[allowed]) if allowed < len(col) else -np.inf
        h = max(h, 0.0)
        thresholds.append(round(h + 0.005, 2))
        alarms = int((maxima[alive, b] > thresholds[-1]).sum())
        hazards.append(alarms / max(width * int(alive.sum()), 1))
        alive &= maxima[:, b] <= thresholds[-1]
    return thresholds, hazards


def _null(kind: str, p: float, rng: np.random.Generator, shape: tuple[int, int]) -> FloatArray:
    if kind == "binary":
        return (rng.random(shape) < p).astype(np.float64)
    return rng.standard_normal(shape)


def calibrate(
    kind: str,
    method: Method = "pred-sr",
    *,
    shifts: Sequence[float] = SELF_STARTING_SHIFTS,
    lag: int = DEFAULT_LAG,
    streams: int = 100_000,
    chunk: int = 20_000,
    seed: int = 20261201,
    rates: Sequence[float] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
    handover: int = 500,
) -> tuple[list[float], dict[str, Any]]:
    """Thresholds per block (the largest over base rates for pass/fail) and how they were found."""
    per_rate: dict[str, list[float]] = {}
    for p in rates if kind == "binary" else (0.0,):
        rng = np.random.default_rng([seed, round(p * 1000)])
        parts = []
        for lo in range(0, streams, chunk):
            data = _null(kind, p, rng, (min(chunk, streams - lo), handover))
            parts.append(
                block_maxima(statistic_paths(data, kind=kind, method=method, shifts=shifts, lag=lag))
            )
        thr, _ = calibrate_blocks(np.concatenate(parts), handover=handover)
        per_rate[f"{p:g}"] = thr
        print(f"  {kind} {method} p={p:g}: {thr}", file=sys.stderr, flush=True)
    worst = [max(v[b] for v in per_rate.values()) for b in range(len(BLOCKS))]
    return worst, {"per_rate": per_rate, "streams": streams, "seed": seed, "lag": lag, "shifts": list(shifts)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--method", default="pred-sr", choices=["pred-sr", "z-sr", "z-cusum"])
    parser.add_argument("--kind", default="both", choices=["binary", "numeric", "both"])
    parser.add_argument("--lag", type=int, default=DEFAULT_LAG)
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args(argv)
    started = time.monotonic()
    for kind in ("binary", "numeric") if args.kind == "both" else (args.kind,):
        thr, info = calibrate(kind, args.method, lag=args.lag, streams=args.streams, seed=args.seed)
        print(f"{kind} {args.method}: {thr} {info}")
    print(f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
