"""Small, dependency-free statistics for alert evidence: running moments, intervals, tests."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "Comparison",
    "Estimate",
    "Moments",
    "RunComparison",
    "benjamini_hochberg",
    "binomial_two_sided",
    "compare_means",
    "compare_paired_binary",
    "compare_paired_means",
    "compare_proportions",
    "compare_runs",
    "compare_stratified_binary",
    "normal_sf",
    "student_t_quantile",
    "student_t_sf",
    "wilson_interval",
    "within_margin",
]

Z95 = 1.959963984540054

#: Alternatives a comparison can test: a rise, a fall, or any difference.
DIRECTIONS = ("up", "down", "two-sided")


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _tail(z: float, direction: str) -> float:
    """The p-value of a statistic ``z`` (standard normal under no change) for the alternative."""
    if direction == "down":
        return normal_sf(-z)
    if direction == "up":
        return normal_sf(z)
    if direction == "two-sided":
        return min(1.0, 2.0 * normal_sf(abs(z)))
    raise ValueError(f"direction: expected one of {', '.join(DIRECTIONS)}, got {direction!r}")


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast only below the mean of the beta distribution.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """Upper tail of Student's t distribution with ``df`` degrees of freedom (the normal when infinite)."""
    if not math.isfinite(df) or df > 1e7:
        return normal_sf(t)
    if math.isnan(t):
        return float("nan")
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t)) if math.isfinite(t) else 0.0
    return tail if t >= 0 else 1.0 - tail


def _student_t_pdf(t: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df))


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

    Newton's method on the exact tail from a Cornish–Fisher start, kept inside a shrinking bracket
    (bisection when a step would leave it): 3–5 tail evaluations where plain bisection took ~60,
    which made each new interval cost milliseconds on the monitor's thread.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: expected a probability strictly between 0 and 1, got {p!r}")
    # Solve in the upper half for the smaller tail, then mirror: 1 - p would lose a tiny lower tail.
    if p == 0.5:
        return 0.0
    tail = p if p < 0.5 else 1.0 - p
    sign = -1.0 if p < 0.5 else 1.0
    z = -NormalDist().inv_cdf(tail)
    if not math.isfinite(df) or df > 1e7:
        return sign * z
    lo, hi = 0.0, math.inf  # the bracket; unbounded above until a step overshoots
    x = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df * df)
    if not 0.0 < x < 1e300:
        x = 1.0
    for _ in range(200):
        excess = student_t_sf(x, df) - tail  # decreasing in x
        if excess == 0.0:
            return sign * x
        if excess > 0:
            lo = x
        else:
            hi = x
        density = _student_t_pdf(x, df)
        step = excess / density if density > 0 else math.inf
        nxt = x + step
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi) if hi < math.inf else 2.0 * max(x, 1.0)
        if abs(nxt - x) <= 1e-13 * max(1.0, abs(x)):
            return sign * nxt
        x = nxt
    return sign * x


@functools.lru_cache(maxsize=4096)
def _t95(df: float) -> float:
    """Half-width multiplier of a 95% t interval.

    Cached: the degrees of freedom repeat (sample sizes, often the same Welch df), and a cached
    value is the very same float, so results do not change.
    """
    return Z95 if not math.isfinite(df) or df > 1e7 else student_t_quantile(0.975, df)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` trials at probability 1/2 (McNemar's exact test).

    The distribution is symmetric, so this is twice the smaller tail, capped at 1 (what
    ``scipy.stats.binomtest(k, n, 0.5)`` reports).
    """
    if n <= 0:
        return 1.0
    low = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(low + 1))
    return min(1.0, 2 * tail / (1 << n))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q-values), in the order given.

    Reject hypothesis ``i`` at false-discovery rate ``alpha`` when ``q[i] <= alpha``: that is the
    step-up rule (the largest rank ``k`` with ``p_(k) <= alpha * k / m`` and every smaller p).
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        q[i] = min(1.0, running)
    return q


@dataclass(slots=True)
class Moments:
    """Count, mean and variance of a stream in O(1) memory (Welford)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    @property
    def var(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    def merged(self, other: Moments) -> Moments:
        """The moments of both sets of observations together (Chan et al.)."""
        n = self.n + other.n
        if n == 0:
            return Moments()
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        return Moments(n, mean, self.m2 + other.m2 + delta * delta * self.n * other.n / n)

    def minus(self, other: Moments) -> Moments:
        """The moments of the observations in ``self`` that are not in ``other`` (a suffix of them)."""
        n = self.n - other.n
        if n <= 0:
            return Moments()
        mean = (self.n * self.mean - other.n * other.mean) / n
        m2 = self.m2 - other.m2 - other.n * self.n / n * (other.mean - self.mean) ** 2
        return Moments(n, mean, max(m2, 0.0))


@dataclass(slots=True, frozen=True)
class Estimate:
    """A point estimate with a 95% interval and its sample size, as alerts report it."""

    mean: float
    n: int
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "n": self.n, "ci_low": self.ci_low, "ci_high": self.ci_high}


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion (honest near 0 and 1, unlike the Wald interval)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(slots=True, frozen=True)
class Comparison:
    """Baseline against current: estimates, effect (current minus or over baseline) and a p-value."""

    baseline: Estimate
    current: Estimate
    effect: float
    effect_ci: tuple[float, float]
    p_value: float


def compare_proportions(base: Moments, cur: Moments, direction: str) -> Comparison:
    """Two proportions: Wilson intervals, Newcombe's interval for the difference, a z-test.

    ``direction`` is the alternative hypothesis: ``"up"`` or ``"down"`` (one-sided, fixed before
    the data in ``cur`` were seen: the caller must pass fresh observations, never the ones that
    raised the alarm) or ``"two-sided"`` (any difference, as in a before/after comparison).
    """
    b_lo, b_hi = wilson_interval(base.mean * base.n, base.n)
    c_lo, c_hi = wilson_interval(cur.mean * cur.n, cur.n)
    diff = cur.mean - base.mean
    # Newcombe (1998) method 10: hybrid score interval for a difference of proportions.
    lo = diff - math.sqrt((cur.mean - c_lo) ** 2 + (b_hi - base.mean) ** 2)
    hi = diff + math.sqrt((c_hi - cur.mean) ** 2 + (base.mean - b_lo) ** 2)
    pooled = (base.mean * base.n + cur.mean * cur.n) / max(base.n + cur.n, 1)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / max(base.n, 1) + 1 / max(cur.n, 1)))
    z = diff / se
    return Comparison(
        Estimate(base.mean, base.n, b_lo, b_hi),
        Estimate(cur.mean, cur.n, c_lo, c_hi),
        diff,
        (lo, hi),
        _tail(z, direction),
    )


def _back(scale: str) -> Callable[[float], float]:
    """From the scale detection works on back to the signal's own units."""
    if scale == "log":
        return lambda x: math.exp(min(x, 700.0))
    if scale == "count":
        return lambda x: math.expm1(min(x, 700.0))
    return lambda x: x


def _estimate(m: Moments, scale: str) -> Estimate:
    """The mean of ``m`` in the signal's units with a 95% t interval (geometric mean on log scales)."""
    back = _back(scale)
    if m.n < 2:
        return Estimate(back(m.mean), m.n, back(-math.inf), back(math.inf))
    half = _t95(m.n - 1) * math.sqrt(m.var / m.n)
    return Estimate(back(m.mean), m.n, back(m.mean - half), back(m.mean + half))


def _effect(diff: float, half: float, scale: str) -> tuple[float, tuple[float, float]]:
    """A difference on the working scale as reported: a ratio on log scales, else a difference."""
    if scale in ("log", "count"):
        if not math.isfinite(half):
            return math.exp(diff), (0.0, math.inf)
        return math.exp(diff), (math.exp(diff - half), math.exp(diff + half))
    return diff, (diff - half, diff + half)


def compare_means(base: Moments, cur: Moments, direction: str, *, scale: str) -> Comparison:
    """Two means with Welch's t-test; on a log scale the effect is the ratio of geometric means.

    ``scale`` is how the values were transformed: ``"log"`` (``log``), ``"count"`` (``log1p``) or
    ``"linear"``. Means and intervals are reported on the original scale. ``direction`` is
    ``"up"``, ``"down"`` or ``"two-sided"`` as in :func:`compare_proportions`.
    """
    _tail(0.0, direction)  # rejects an unknown direction before any arithmetic
    diff = cur.mean - base.mean
    if base.n < 2 or cur.n < 2:
        return Comparison(_estimate(base, scale), _estimate(cur, scale), *_effect(diff, math.inf, scale), 1.0)
    vb, vc = base.var / base.n, cur.var / cur.n
    se = math.sqrt(vb + vc)
    if se <= 0:
        # No spread on either side: any difference is certain, none is no evidence at all.
        p = (
            1.0
            if diff == 0 or (direction == "up" and diff < 0) or (direction == "down" and diff > 0)
            else 0.0
        )
        return Comparison(_estimate(base, scale), _estimate(cur, scale), *_effect(diff, 0.0, scale), p)
    # Welch–Satterthwaite degrees of freedom for unequal variances.
    df = (vb + vc) ** 2 / ((vb * vb / (base.n - 1) if vb else 0.0) + (vc * vc / (cur.n - 1) if vc else 0.0))
    t = diff / se
    if direction == "down":
        p = student_t_sf(-t, df)
    elif direction == "up":
        p = student_t_sf(t, df)
    else:
        p = min(1.0, 2.0 * student_t_sf(abs(t), df))
    effect, effect_ci = _effect(diff, _t95(df) * se, scale)
    return Comparison(_estimate(base, scale), _estimate(cur, scale), effect, effect_ci, p)


def within_margin(base: Moments, cur: Moments, margin: float, worse: str, *, binary: bool) -> float:
    """One-sided p-value for "``cur`` is within ``margin`` of ``base`` on the ``worse`` side".

    The null hypothesis is that ``cur`` lies at least ``margin`` beyond ``base`` in the direction
    ``worse`` (``"down"``: ``cur - base <= -margin``; ``"up"``: ``cur - base >= margin``); a small
    p-value is evidence that it does not (the non-inferiority half of a TOST equivalence test).
    Pass/fail uses the Agresti–Caffo interval's z statistic (one success and one failure added to
    each side, then Wald); numeric values use Welch's t.
    """
    if worse not in ("up", "down"):
        raise ValueError(f"worse: expected up or down, got {worse!r}")
    sign = 1.0 if worse == "down" else -1.0
    if not binary:
        shifted = Moments(base.n, base.mean - sign * margin, base.m2)
        return compare_means(shifted, cur, "up" if worse == "down" else "down", scale="linear").p_value
    pb = (base.mean * base.n + 1) / (base.n + 2)
    pc = (cur.mean * cur.n + 1) / (cur.n + 2)
    se = math.sqrt(pb * (1 - pb) / (base.n + 2) + pc * (1 - pc) / (cur.n + 2))
    return normal_sf((sign * (pc - pb) + margin) / se)


def compare_paired_binary(pairs: Sequence[tuple[float, float]]) -> Comparison:
    """Pass/fail of the same tasks before and after: exact McNemar test, Newcombe's paired interval.

    ``pairs`` holds (before, after) as 0/1. The p-value is the two-sided exact binomial test on the
    discordant pairs; the effect is the difference of pass rates over the pairs, with Newcombe's
    (1998) hybrid score interval for paired proportions (method 10, continuity-corrected phi).
    """
    n = len(pairs)
    both = sum(1 for b, a in pairs if b and a)
    lost = sum(1 for b, a in pairs if b and not a)  # passed before, fails after
    gained = sum(1 for b, a in pairs if a and not b)
    neither = n - both - lost - gained
    p_before, p_after = (both + lost) / max(n, 1), (both + gained) / max(n, 1)
    b_lo, b_hi = wilson_interval(both + lost, n)
    a_lo, a_hi = wilson_interval(both + gained, n)
    margins = (both + lost) * (gained + neither) * (both + gained) * (lost + neither)
    # Newcombe's continuity-corrected phi: shrink a positive association by n/2, keep a negative one.
    cross = both * neither - lost * gained
    corrected = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = corrected / math.sqrt(margins) if margins > 0 else 0.0
    diff = p_after - p_before
    d_a_lo, d_a_hi, d_b_lo, d_b_hi = p_after - a_lo, a_hi - p_after, p_before - b_lo, b_hi - p_before
    lo = diff - math.sqrt(max(d_a_lo**2 - 2 * phi * d_a_lo * d_b_hi + d_b_hi**2, 0.0))
    hi = diff + math.sqrt(max(d_a_hi**2 - 2 * phi * d_a_hi * d_b_lo + d_b_lo**2, 0.0))
    return Comparison(
        Estimate(p_before, n, b_lo, b_hi),
        Estimate(p_after, n, a_lo, a_hi),
        diff,
        (max(-1.0, lo), min(1.0, hi)),
        binomial_two_sided(gained, lost + gained),
    )


def compare_stratified_binary(strata: Sequence[tuple[int, int, int, int]]) -> Comparison:
    """Pass/fail before and after, stratified by task: Cochran–Mantel–Haenszel, two-sided.

    ``strata`` holds ``(n_before, passes_before, n_after, passes_after)`` per task; tasks seen on
    one side only carry no information and drop out. The effect is the Mantel–Haenszel risk
    difference ``Σ w (p_after - p_before) / Σ w`` with ``w = n_before n_after / n``, with a Wald
    interval; the p-value is the CMH test without continuity correction. Unlike one pair per task,
    every outcome of a task that recurs (a daily suite) counts.
    """
    num = var = weights = diff = spread = 0.0
    before = after = 0
    k_before = k_after = 0
    for n0, k0, n1, k1 in strata:
        n = n0 + n1
        if n0 == 0 or n1 == 0 or n < 2:
            continue
        before, after, k_before, k_after = before + n0, after + n1, k_before + k0, k_after + k1
        m = k0 + k1
        num += k1 - n1 * m / n
        var += n1 * n0 * m * (n - m) / (n * n * (n - 1))
        w = n0 * n1 / n
        p0, p1 = k0 / n0, k1 / n1
        weights += w
        diff += w * (p1 - p0)
        spread += w * w * (p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    b_lo, b_hi = wilson_interval(k_before, before)
    a_lo, a_hi = wilson_interval(k_after, after)
    base = Estimate(k_before / max(before, 1), before, b_lo, b_hi)
    cur = Estimate(k_after / max(after, 1), after, a_lo, a_hi)
    if weights <= 0:
        return Comparison(base, cur, 0.0, (-1.0, 1.0), 1.0)
    effect = diff / weights
    half = Z95 * math.sqrt(spread) / weights
    p = min(1.0, 2 * normal_sf(abs(num) / math.sqrt(var))) if var > 0 else (1.0 if num == 0 else 0.0)
    return Comparison(base, cur, effect, (max(-1.0, effect - half), min(1.0, effect + half)), p)


def compare_paired_means(pairs: Sequence[tuple[float, float]], *, scale: str) -> Comparison:
    """The same tasks before and after on a numeric signal: two-sided paired t-test.

    ``pairs`` holds (before, after) on the working scale (``scale`` as in :func:`compare_means`);
    the effect is the mean difference, reported as a ratio of geometric means on log scales.
    """
    before, after, diffs = Moments(), Moments(), Moments()
    for b, a in pairs:
        before.add(b)
        after.add(a)
        diffs.add(a - b)
    n = diffs.n
    if n < 2:
        return Comparison(
            _estimate(before, scale), _estimate(after, scale), *_effect(diffs.mean, math.inf, scale), 1.0
        )
    se = math.sqrt(diffs.var / n)
    if se <= 0:
        p = 1.0 if diffs.mean == 0 else 0.0
        half = 0.0
    else:
        p = min(1.0, 2.0 * student_t_sf(abs(diffs.mean / se), n - 1))
        half = _t95(n - 1) * se
    effect, effect_ci = _effect(diffs.mean, half, scale)
    return Comparison(_estimate(before, scale), _estimate(after, scale), effect, effect_ci, p)


@dataclass(slots=True, frozen=True)
class RunComparison:
    """One run against the baseline run: the comparison, its BH-adjusted q-value and the verdict."""

    index: int
    """Position of the run in the list given to :func:`compare_runs`."""
    comparison: Comparison
    q_value: float
    differs: bool


def compare_runs(
    baseline: tuple[int, int], runs: Sequence[tuple[int, int]], *, alpha: float = 0.05
) -> list[RunComparison]:
    """Pass counts of several runs against one baseline run, with Benjamini–Hochberg across them.

    ``baseline`` and each run are ``(passes, n)``. Each run gets the two-sided two-proportion
    comparison (Newcombe interval, z-test) against the baseline; a run ``differs`` when its
    q-value is at most ``alpha`` (false-discovery rate over all the runs compared).
    """
    for where, (passes, n) in [("baseline", baseline), *((f"runs[{i}]", r) for i, r in enumerate(runs))]:
        if not (isinstance(n, int) and isinstance(passes, int) and 0 <= passes <= n and n > 0):
            raise ValueError(
                f"{where}: expected (passes, n) with 0 <= passes <= n and n >= 1, got {(passes, n)!r}"
            )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number between 0 and 1, got {alpha!r}")

    def moments(passes: int, n: int) -> Moments:
        p = passes / n
        return Moments(n, p, n * p * (1 - p))

    comparisons = [compare_proportions(moments(*baseline), moments(*run), "two-sided") for run in runs]
    q = benjamini_hochberg([c.p_value for c in comparisons])
    return [RunComparison(i, c, q[i], q[i] <= alpha) for i, c in enumerate(comparisons)]
