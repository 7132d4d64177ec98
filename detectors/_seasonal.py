"""A seasonal baseline for numeric signals: hour-of-day and day-of-week profiles of a stream's values.

Latency, time to first token, tokens and cost follow the day (and the week): load, batch jobs,
users' working hours. Against a flat baseline every afternoon reads as a change. ``Seasonal`` learns
the profile from every value observed (stage two's too), ``delay`` values late (``LaggedSR``'s lag,
so a change reaches the profile as late as it reaches the baseline), and ``LaggedSR`` watches the
value minus its hour's (and weekday's) offset from the overall mean: the residual. Both stages see
residuals (the monitor feeds stage two ``LaggedSR.adjusted`` values), so the baseline and current
means of an alert from a seasonal stream are seasonally adjusted, and its evidence says so.

Each factor (24 hours of the day, 7 days of the week; by the UTC event time) keeps, per bin and
per parity of the period (even and odd days; even and odd weeks), the count, mean and sum of
squares of the values. The offsets are refreshed every ``REFRESH`` values:

* once two periods exist (an even and an odd one), by *split halves*: the bins' deviations from the
  mean on even and on odd periods are independent estimates of the same profile when the noise's
  dependence is shorter than a period (bursts, AR noise, batches of tasks), so the mean of their
  products estimates the profile's variance τ² without knowing the noise's, and a quarter of their
  mean squared difference the noise v of a bin's mean, serial dependence included. A profile is
  used when that mean product is ``SPLIT_Z`` standard errors above zero (kept down to ``KEEP_Z``).
  One period is not enough: a change, or a dip that came back, within the first day reads as an
  hour-of-day profile as well as a cycle does (a χ² test of one day's bins absorbed a 0.8 → 0.5
  step of a JUnit score into "hour of day" and paged its end as a rise); a profile must repeat;
* each offset is the bin's deviation shrunk by τ² / (τ² + v) (empirical Bayes), so sparse bins and
  weak cycles move the values little, and independent values (τ² ≈ 0) are hardly touched.

Memory: 2 × 31 bins × 3 doubles, 31 offsets and the delay's values and times (two doubles each in
one array: 4.8 KB at the default lag of 300), under 8 KiB; it pickles as plain lists and an array.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

__all__ = ["FACTORS", "Seasonal"]

#: (name, period in seconds, bins): hour of day and day of week, by the UTC event time (``_cells``).
FACTORS: tuple[tuple[str, float, int], ...] = (("hour_of_day", 86_400.0, 24), ("day_of_week", 604_800.0, 7))
#: Values between refreshes of the offsets.
REFRESH = 100
#: A bin's count stops growing here (its mean then follows the latest values, ~exponentially), so the
#: profile follows a slowly changing shape (daylight saving time, a new user base).
CELL_CAP = 4000
#: Split-half test: the mean product of the even and odd deviations must be this many standard
#: errors above zero (one-sided p ≈ 2e-4 on normal products).
SPLIT_Z = 3.5
#: A profile in use stays in use while its test is this many standard errors (normal quantile)
#: beyond zero: hysteresis, so a profile near the edge does not switch on and off.
KEEP_Z = 2.0
#: The baseline's mean under today's offsets differs from its mean as adjusted when its values
#: entered by more than this (in within-bin standard deviations): ``changed`` is set, and ``LaggedSR``
#: resumes from its baseline moved by the difference (``shift``), at full sensitivity (a restart
#: would leave a change right after it a warm-up to leak into). It happens when a profile is first
#: shown and the baseline covers part of a day only (2,000 values a day, a baseline of 500):
#: unadjusted, that quarter of the day would read the rest of the day as a change. A baseline over
#: whole days is hardly moved (the offsets average to zero over them).
RESTART_SD = 0.1


Cells = tuple[int, int, int, int]


def _cells(t: float) -> tuple[float, Cells]:
    """(start of the hour, (hour of day, parity of the day, day of the week, parity of the week))
    of event time ``t``."""
    day = math.floor(t / 86_400.0)
    hour = min(int((t - day * 86_400.0) / 3_600.0), 23)
    return day * 86_400.0 + hour * 3_600.0, (hour, day % 2, day % 7, (day // 7) % 2)


class _Clock:
    """``_cells`` with the last hour remembered: consecutive values mostly fall in the same hour."""

    def __init__(self) -> None:
        self.start = math.inf
        self.cells: Cells = (0, 0, 0, 0)

    def __call__(self, t: float) -> Cells:
        if not self.start <= t < self.start + 3_600.0:
            self.start, self.cells = _cells(t)
        return self.cells


class _Factor:
    """One seasonal factor: per bin and period parity the count, mean and m2 of the values."""

    def __init__(self, name: str, period: float, bins: int) -> None:
        self.name = name
        self.period = period
        self.bins = bins
        self.n = [0.0] * (2 * bins)  # index parity * bins + bin
        self.mean = [0.0] * (2 * bins)
        self.m2 = [0.0] * (2 * bins)
        self.offsets: list[float] | None = None  # None: no profile in use
        self.amplitude = 0.0  # half the range of the offsets in use (for the alert)
        self.sd = 0.0  # the within-bin standard deviation at the last refit
        # Of the values in the detector's baseline: per bin the count and the sum of the offsets they
        # were adjusted by (``rebase`` zeroes them).
        self.count = [0.0] * bins
        self.applied = [0.0] * bins

    def bias(self) -> float:
        """Σ over the values the detector saw since its restart of (today's offset - the offset
        they were adjusted by)."""
        now = self.offsets or [0.0] * self.bins
        return sum(c * o - a for c, o, a in zip(self.count, now, self.applied, strict=True))

    def add(self, value: float, b: int, parity: int) -> None:
        i = parity * self.bins + b
        n = self.n[i]
        if n >= CELL_CAP:
            self.m2[i] *= (CELL_CAP - 1) / CELL_CAP
        else:
            n = self.n[i] = n + 1
        delta = value - self.mean[i]
        self.mean[i] += delta / n
        self.m2[i] += delta * (value - self.mean[i])

    def _pooled(self) -> tuple[list[float], list[float], float, float]:
        """Per bin (both parities): counts and means; the pooled within-bin variance; the grand mean."""
        k = self.bins
        counts, means = [0.0] * k, [0.0] * k
        ss = df = 0.0
        for b in range(k):
            n0, n1 = self.n[b], self.n[k + b]
            n = n0 + n1
            if n:
                counts[b] = n
                means[b] = (n0 * self.mean[b] + n1 * self.mean[k + b]) / n
                ss += self.m2[b] + self.m2[k + b]
                df += max(n0 - 1, 0) + max(n1 - 1, 0)
        total = sum(counts)
        grand = sum(c * m for c, m in zip(counts, means, strict=True)) / total if total else 0.0
        return counts, means, ss / df if df > 0 else 0.0, grand

    def refit(self, span: float) -> None:
        """Refresh the offsets from the data so far (``span``: seconds between the first and the
        latest value)."""
        kept = self.offsets is not None
        self.offsets, self.amplitude = None, 0.0
        if span < self.period:
            return
        k = self.bins
        counts, means, s2, grand = self._pooled()
        self.sd = math.sqrt(s2)
        both = [b for b in range(k) if self.n[b] >= 2 and self.n[k + b] >= 2]
        if span < 2 * self.period or len(both) < max(3, k // 2):
            return
        tau2, v = self._split_halves(both, KEEP_Z if kept else SPLIT_Z)
        if tau2 is None:
            return
        mean_n = sum(counts[b] for b in both) / len(both)
        noise = [v * mean_n / c if c else math.inf for c in counts]
        if not tau2 > 0:
            return
        self.offsets = [tau2 / (tau2 + noise[b]) * (means[b] - grand) if counts[b] else 0.0 for b in range(k)]
        self.amplitude = float(max(self.offsets) - min(self.offsets)) / 2

    def _split_halves(self, both: list[int], z: float) -> tuple[float | None, float]:
        """(τ², v) from the even and odd periods' deviations, or (None, v) if the profile is not
        shown (their mean product within ``SPLIT_Z`` standard errors of zero)."""
        k = self.bins
        devs = []
        for parity in (0, 1):
            counts = [self.n[parity * k + b] for b in both]
            means = [self.mean[parity * k + b] for b in both]
            g = sum(a * b for a, b in zip(counts, means, strict=True)) / sum(counts)
            devs.append([x - g for x in means])
        prods = [a * b for a, b in zip(devs[0], devs[1], strict=True)]
        diffs = [(a - b) ** 2 for a, b in zip(devs[0], devs[1], strict=True)]
        m = len(prods)
        tau2 = sum(prods) / m
        v = sum(diffs) / m / 4
        sd = math.sqrt(sum((p - tau2) ** 2 for p in prods) / (m - 1))
        return (tau2 if tau2 > z * sd / math.sqrt(m) else None), v


class Seasonal:
    """Hour-of-day and day-of-week offsets of a numeric stream (see the module's docstring).

    ``observe(value, t)`` every value as observed (stage two's too): it is learnt ``delay``
    values later, as the detector's lag keeps a change out of its baseline; ``note(t)`` is the
    offset to subtract from a value the detector is fed (0 until a profile is shown), ``offset(t)``
    the same without counting it.
    """

    _uncounted = 0  # class default for pickles before it (``rebase``)
    #: Times the profile appeared, went or moved (``_refresh``): a page's recovery check re-expresses
    #: its baseline and changed level when it changes (class default for pickles before it).
    moves = 0

    def __init__(self, delay: int = 300) -> None:
        self.delay = delay
        self._factors = [_Factor(name, period, bins) for name, period, bins in FACTORS]
        # The values not learnt yet and their times: a ring of ``delay`` pairs of doubles (4.8 KB
        # at the default lag), oldest at ``_head``.
        self._ring = array("d", bytes(16 * delay))
        self._head = 0
        self._filled = 0
        self._first = math.inf
        self._last = -math.inf
        self._count = 0
        self._note_clock, self._learn_clock = _Clock(), _Clock()
        self.active = False  # whether any factor's offsets are in use
        #: The offsets moved the detector's values since its restart by more than RESTART_SD on
        #: average (``rebase`` clears it; ``LaggedSR`` resumes from its baseline moved by ``shift``).
        self.changed = False
        self.shift = 0.0
        self._uncounted = 0

    def offset(self, t: float) -> float:
        if not self.active or not math.isfinite(t):
            return 0.0
        hour, _, weekday, _ = _cells(t)[1]
        by_hour, by_day = self._factors[0].offsets, self._factors[1].offsets
        return (by_hour[hour] if by_hour else 0.0) + (by_day[weekday] if by_day else 0.0)

    def note(self, t: float) -> float:
        """``offset(t)`` for a value the detector is fed, counted for the restart check."""
        if not math.isfinite(t):
            return 0.0
        hour, _, weekday, _ = self._note_clock(t)
        by_hour, by_day = self._factors
        by_hour.count[hour] += 1
        by_day.count[weekday] += 1
        if not self.active:
            return 0.0
        total = 0.0
        for factor, b in ((by_hour, hour), (by_day, weekday)):
            offsets = factor.offsets
            if offsets is not None:
                factor.applied[b] += offsets[b]
                total += offsets[b]
        return total

    def observe(self, value: float, t: float) -> bool:
        """A value as observed, with its event time (NaN: unknown, not learnt); learnt ``delay``
        values later. True if the profile appeared, went or moved (``changed`` set) with it."""
        if not math.isfinite(t):
            return False
        if self.delay <= 0:
            return self._learn(value, t)
        ring, i = self._ring, self._head
        if self._filled < self.delay:
            j = 2 * ((i + self._filled) % self.delay)
            ring[j], ring[j + 1] = value, t
            self._filled += 1
            return False
        old_value, old_t = ring[2 * i], ring[2 * i + 1]
        ring[2 * i], ring[2 * i + 1] = value, t
        self._head = (i + 1) % self.delay
        return self._learn(old_value, old_t)

    def _learn(self, value: float, t: float) -> bool:
        hour, day_parity, weekday, week_parity = self._learn_clock(t)
        self._factors[0].add(value, hour, day_parity)
        self._factors[1].add(value, weekday, week_parity)
        if t < self._first:
            self._first = t
        if t > self._last:
            self._last = t
        self._count += 1
        if self._count % REFRESH:
            return False
        return self._refresh()

    def _refresh(self) -> bool:
        """Refit the offsets (every ``REFRESH`` values learnt) and check the detector's baseline;
        True if the profile appeared, went or moved (``changed`` set) with it."""
        was = self.active, self.changed
        span = self._last - self._first
        bias = 0.0
        for factor in self._factors:
            factor.refit(span)
            bias += factor.bias()
        seen = sum(self._factors[0].count)
        self.active = any(f.offsets is not None for f in self._factors)
        #: How much the offsets now in use move the mean of the values the detector saw since its
        #: restart (Σ (today's offset - the applied one) / count): its baseline is re-expressed by it.
        self.shift = bias / max(seen + self._uncounted, 1.0)
        self.changed = abs(self.shift) > RESTART_SD * self._factors[0].sd
        moved = self.active != was[0] or self.changed > was[1]
        self.moves += moved
        return moved

    def mean_offset(self, start: float, end: float) -> float:
        """The mean offset in use over event times ``start`` to ``end`` (hourly, the last week at
        most): what values spread evenly over that span are adjusted by, on average."""
        if not (self.active and math.isfinite(start) and math.isfinite(end) and end > start):
            return 0.0
        start = max(start, end - 7 * 86_400.0)
        steps = max(1, math.ceil((end - start) / 3_600.0))
        width = (end - start) / steps
        return sum(self.offset(start + (i + 0.5) * width) for i in range(steps)) / steps

    def rebase(self, uncounted: int = 0) -> None:
        """The detector restarted: its values from now on are adjusted by the offsets in use.

        ``uncounted``: values of a resumed baseline, observed before the restart (their hours are
        not known here). They enter the restart check's mean at a zero offset change, the offsets'
        mean over a day: extrapolating the few values counted since a resume (one phase of the
        cycle) to a baseline of days moved it by the cycle's amplitude, and the page that followed
        was the cycle's (``tests/detectors/test_seasonal.py``).
        """
        self.changed = False
        self._uncounted = uncounted
        for factor in self._factors:
            factor.count = [0.0] * factor.bins
            factor.applied = [0.0] * factor.bins

    def describe(self) -> dict[str, Any] | None:
        """The profiles in use, for an alert's evidence: per factor the amplitude of its offsets
        (half their range, on the detector's scale) and how it was shown; None if none is."""
        if not self.active:
            return None
        return {
            f.name: {
                "amplitude": round(f.amplitude, 4),
                "days": round((self._last - self._first) / 86_400, 1),
            }
            for f in self._factors
            if f.offsets is not None
        }
