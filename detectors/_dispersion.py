"""The long-run variance inflation κ of a stream's values, for ``LaggedSR`` and its confirmation.

Serially dependent values (failures in bursts, batches of easy and hard tasks, AR noise, cycles)
make a sum of log likelihood ratios wander more than independence allows: its variance is κ times
the independent one. ``Dispersion`` estimates κ from the values as they enter the detector's
baseline (so a change reaches it only after the lag), kept across the detector's restarts, as the
largest of three lower 95% confidence bounds, each 1 on independent values, once one of them at
99.5% exceeds 1 (dependence shown; else 1):

* batch means (batches of ``DISPERSION_BATCH``; successive differences, so one level change spoils
  one term, not the estimate);
* the lag-1 autocorrelation as an AR(1) factor ``(1 + r) / (1 - r)``: bursts and AR noise show in
  tens of values, long before enough batches exist;
* block means of ``DISPERSION_BLOCK`` values: their variance ratio times the AR(1) factor of their
  own lag-1 autocorrelation, pooled within restarts: runs of tens (easy/hard batches, cycles).

For the confirmation, also a *variance-time reading* (``scales``): κ at windows of 10-640 values,
``b`` times the variance of consecutive ``b``-value means, from the values before the estimated
change. Slow structure (a cycle's phase, runs of easy or hard tasks) shows as κ growing with the
window; stage two divides its evidence after ``n`` fresh values by the reading at ``n``, taken at
its upper 90% bound (a reading that happens to be low is what lets a run of hard tasks page).

Why not an AR fit alone: batch regimes' autocorrelation decays slower than φ^k (their κ is 6-10
where the lag-1 reading says 1.4); batch means alone need thousands of values before their bound
moves; regime models need labels. ``docs/detection.md`` ("Production-shaped streams") measures it.
"""

from __future__ import annotations

import math
from array import array

from driftwatch._stats import Moments
from driftwatch.detectors._self_starting import SelfStartingSR

__all__ = ["DISPERSION_BATCH", "DISPERSION_BLOCK", "DISPERSION_SCALES", "Dispersion"]

#: Values per batch of the long-run variance estimate (see ``LaggedSR.dispersion``).
DISPERSION_BATCH = 50
#: Values per block of the AR(1)-on-block-means reading of κ (see ``Dispersion._update_kappa``).
DISPERSION_BLOCK = 10
#: The stage-one inflation is the readings' largest lower confidence bound at this level (95%).
_DISPERSION_CONFIDENCE = 1.645
#: ... but only once dependence is *shown*: one of the three readings' lower bounds at this level
#: (one-sided 99.5%) exceeds 1. With three readings refreshed as the baseline grows, the 95% bounds
#: alone exceeded 1 on 11-13% of independent streams at observation 1,000, which slowed their
#: detection; with this test 1.4% (docs/detection.md).
_DISPERSION_SHOWN = 2.576
#: Batch pairs of prior weight at 1 in the (point) inflation given to the confirmation stage.
_DISPERSION_PRIOR = 4.0
_DISPERSION_MAX = 50.0
#: Window lengths of the variance-time reading handed to the confirmation (``Dispersion.scales``):
#: κ at the length of the fresh window, where slow structure (a cycle's phase, runs of easy or hard
#: tasks) has not averaged out yet.
DISPERSION_SCALES: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640)
#: Block means of DISPERSION_BLOCK values kept per restart for it (the latest; 2,560 values).
_SCALE_KEEP = 256

#: The variance-time reading is used at its upper bound at this level (one-sided 90%; 0 would use the
#: point estimate). The frontier measured (docs/detection.md, "Regime batches"): the highest level
#: whose null pages are within the noise of 95%'s (regime batches 1.72 against 1.70 per 10k), while
#: a −0.2 pass-rate drop inside regime batches is paged in 75% of streams within 1,500 (95%: 65%).
_SCALE_UPPER = 1.28
#: Floor of the Wilson-Hilferty factor of an upper bound (few degrees of freedom; capped at κ's max).
_CHI2_FLOOR = 0.05
_P_FLOOR = 0.02  # as LaggedSR


class Dispersion:
    """κ for one (stream, signal): ``add`` each value entering the baseline, ``restart`` at the
    detector's restarts; ``kappa`` (lower bound, stage one) and ``estimate`` (stage two)."""

    _vt_skip = 0  # values left out of the variance-time reading (``forget_scales``)

    def __init__(self, kind: str, warmup: int) -> None:
        self.kind = kind
        self.warmup = warmup
        self.early: SelfStartingSR | None = None  # told each new κ (set by LaggedSR)
        self.enabled = True
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
        self._ref = Moments()
        self._n = 0
        # The variance-time reading: the latest block means and the position (in the detector's
        # count since its restart; -1 before it) of each block's last value.
        self._y: array[float] = array("d")
        self._y_end: array[int] = array("q")

    def restart(self) -> None:
        """The detector restarted (an alarm, a resume): no difference or pair across it."""
        self._b_sum, self._b_count, self._b_last = 0.0, 0, None
        self._a_last = None
        self._end_chain()
        if not hasattr(self, "_y"):  # snapshots before the variance-time reading
            self._y, self._y_end = array("d"), array("q")
        # The variance-time reading's run of block means goes on across restarts: slow structure
        # is longer than the stretches between alarms, and pooling each stretch around its own
        # mean hides it (measured: cycles at 2,000 a day kept κ ≈ 1-2 that way). Its blocks all
        # lie before any later change.
        self._y_end = array("q", [-1]) * len(self._y)

    def forget_scales(self, pending: int = 0) -> None:
        """Drop the variance-time reading's block means (a seasonal profile now taken out of the
        values, or moved): the structure they showed is gone. ``pending``: values still to enter
        that were watched the old way (the detector's lag), left out of it too."""
        self._y, self._y_end = array("d"), array("q")
        self._vt_skip = pending + DISPERSION_BLOCK

    def add(self, value: float, ref: Moments, n: int, at: int = 0) -> None:
        """A value entering the baseline into the estimates of the long-run variance (``_update_kappa``):
        per value only sums; the readings are refreshed per block of ``DISPERSION_BLOCK`` values.
        ``at``: the value's position in the detector's count since its restart (``scales``)."""
        if not self.enabled:
            return
        self._ref, self._n = ref, n
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
        self._vt_skip -= 1
        if self._k_count == DISPERSION_BLOCK:
            y = self._k_sum / DISPERSION_BLOCK
            self._k_sum, self._k_count = 0.0, 0
            self._block(y)
            if not hasattr(self, "_y"):  # snapshots before the variance-time reading
                self._y, self._y_end = array("d"), array("q")
            if self._vt_skip <= 0:
                self._y.append(y)
                self._y_end.append(at)
            if len(self._y) > 2 * _SCALE_KEEP:
                del self._y[:_SCALE_KEEP], self._y_end[:_SCALE_KEEP]
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
        var = self._unit_variance()
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

    def _block_kappa(self, z: float = _DISPERSION_CONFIDENCE) -> float:
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
        var = self._unit_variance()
        if not var > 0 or not ss > 0:
            return 1.0
        ratio = DISPERSION_BLOCK * (ss / df) / var
        c2 = 2 / (9 * df)
        ratio /= max(1.0, (1 - c2 + z * math.sqrt(c2)) ** 3)
        r = cov / pairs / (ss / df) if pairs >= 2 else 0.0
        low = min(r - z / math.sqrt(max(pairs, 1.0)), 0.9)
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

    def _readings(self, z: float) -> float:
        """The largest of the three readings' lower bounds at ``z`` standard errors, at least 1."""
        batch = self._kappa_estimate() / self._chi2_ratio(z)
        r, se = self._lag1()
        low = min(r - z * se, 0.9)
        ar = (1 + low) / (1 - low) if low > 0 else 1.0
        return max(1.0, batch, ar, self._block_kappa(z))

    def _update_kappa(self) -> None:
        bound = min(_DISPERSION_MAX, self._readings(_DISPERSION_CONFIDENCE))
        self._kappa = bound if self._readings(_DISPERSION_SHOWN) > 1.0 else 1.0
        if self.early is not None:  # the warm-up's detector takes the 95% bound as before the test
            self.early.dispersion = bound

    def _kappa_estimate(self) -> float:
        return self._d_sum / self._d_count if self._d_count else 1.0

    def _df(self) -> float:
        # Squared successive differences overlap: their mean has about 2m²/(3m - 1) degrees of freedom
        # for m differences of independent batch means (von Neumann), not m.
        m = self._d_count
        return 2 * m * m / (3 * m - 1) if m else 0.0

    def _chi2_ratio(self, z: float = _DISPERSION_CONFIDENCE) -> float:
        """Upper point of χ²_df / df at ``z`` (Wilson–Hilferty; 95% by default): the estimate's lower
        bound divides by it."""
        df = self._df()
        if df <= 0:
            return math.inf
        c = 2 / (9 * df)
        return max(1.0, (1 - c + z * math.sqrt(c)) ** 3)

    @property
    def kappa(self) -> float:
        """Stage one's long-run variance inflation κ: each likelihood ratio's log is divided by it.

        The largest lower 95% confidence bound of the three readings, once one of them at 99.5% shows
        dependence (else 1): 1 on independent pass/fail values in ~98.6% of streams at observation
        1,000."""
        return self._kappa

    @property
    def estimate(self) -> float:
        """The point estimate of κ, shrunk towards 1 by a prior of a few batch pairs, at least 1:
        the inflation the confirmation stage should use (``confirm_kwargs``)."""
        df = self._df()
        batch = (df * self._kappa_estimate() + _DISPERSION_PRIOR) / (df + _DISPERSION_PRIOR)
        # The lag-1 reading enters at its lower bound, as in stage one: a step in the baseline (a
        # change inside a short warm-up) looks like autocorrelation, and must not slow its page.
        return min(_DISPERSION_MAX, max(self._kappa, batch))

    def _unit_variance(self) -> float:
        """One value's variance under the baseline: p(1-p) at its rate (floored) or its sample variance."""
        if self.kind == "binary":
            p = min(max(self._ref.mean, _P_FLOOR), 1 - _P_FLOOR)
            return p * (1 - p)
        return float(self._ref.var)

    def scales(self, before: int) -> tuple[tuple[int, float], ...]:
        """κ at each window length of ``DISPERSION_SCALES`` whose lower 99.5% bound exceeds 1, at its
        upper 90% bound: ``b`` times the variance of consecutive ``b``-value means over the values'
        variance, from the values up to position ``before`` (the estimated change: values after it
        are the change, not structure) and the earlier restarts' (each around its own mean).

        The long-run κ (``estimate``) is the limit for windows long against the dependence; a fresh
        window shorter than the slow structure (a cycle's peak lasts hours; easy and hard tasks come
        in runs of tens) can sit in one phase of it, and its mean then varies more than κ allows:
        the confirmation divides its evidence after ``n`` fresh values by the reading at the largest
        scale up to ``n``. Independent values give 1 at every scale."""
        if not hasattr(self, "_y"):
            return ()
        var = self._unit_variance()
        if not var > 0:
            return ()
        keep = sum(1 for end in self._y_end if end <= before)
        out = []
        sums = _scale_sums(self._y[:keep])
        for b, (ss, df) in zip(DISPERSION_SCALES, sums, strict=True):
            if df < 3 or not ss > 0:
                continue
            c = 2 / (9 * df)
            kappa = b * (ss / df) / var
            if kappa / (1 - c + _DISPERSION_SHOWN * math.sqrt(c)) ** 3 > 1:
                # Shown at the lower 99.5% bound (independent values: 1 in 99.5% of streams per
                # scale; as κ's test), used at the upper 90% bound: the confirmation divides its
                # evidence by it, and a reading that happens to be low is what lets a run of hard
                # tasks page (on regime batches the point estimate was 2-4 where κ is 6-7 in the
                # streams that paged). Shown at 95%, a window of independent values read 2 by chance
                # in a quarter of streams, its upper 95% bound 8: a 0.8 -> 0.5 drop paged after 160.
                if _SCALE_UPPER > 0:
                    kappa /= max(_CHI2_FLOOR, 1 - c - _SCALE_UPPER * math.sqrt(c)) ** 3
                out.append((b, round(min(kappa, _DISPERSION_MAX), 3)))
        return tuple(out)


def _scale_sums(y: array[float]) -> list[tuple[float, float]]:
    """Per scale of ``DISPERSION_SCALES``: the squares of its block means around their mean (Σ, df),
    the means of consecutive pairs of the previous scale's (the first scale: ``y`` itself)."""
    out = []
    level = list(y)
    for _ in DISPERSION_SCALES:
        m = len(level)
        if m >= 2:
            mean = math.fsum(level) / m
            out.append((math.fsum((v - mean) ** 2 for v in level), float(m - 1)))
        else:
            out.append((0.0, 0.0))
        level = [(level[i] + level[i + 1]) / 2 for i in range(0, m - 1, 2)]
    return out
