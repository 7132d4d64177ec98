"""Small, dependency-free statistics for alert evidence: running moments, intervals, tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Estimate",
    "Moments",
    "compare_means",
    "compare_proportions",
    "normal_sf",
    "wilson_interval",
]

Z95 = 1.959963984540054


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


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
    """Two proportions: Wilson intervals, Newcombe's interval for the difference, one-sided z-test.

    ``direction`` is ``"up"`` or ``"down"``: the alternative hypothesis, fixed before the data in
    ``cur`` were seen (the caller must pass fresh observations, never the ones that raised the alarm).
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
    p = normal_sf(-z) if direction == "down" else normal_sf(z)
    return Comparison(
        Estimate(base.mean, base.n, b_lo, b_hi),
        Estimate(cur.mean, cur.n, c_lo, c_hi),
        diff,
        (lo, hi),
        p,
    )


def compare_means(base: Moments, cur: Moments, direction: str, *, scale: str) -> Comparison:
    """Two means with a Welch z-test; on a log scale the effect is the ratio of geometric means.

    ``scale`` is how the values were transformed: ``"log"`` (``log``), ``"count"`` (``log1p``) or
    ``"linear"``. Means and intervals are reported on the original scale.
    """
    log_scale = scale in ("log", "count")
    se_b = math.sqrt(base.var / base.n) if base.n > 1 else float("inf")
    se_c = math.sqrt(cur.var / cur.n) if cur.n > 1 else float("inf")
    diff = cur.mean - base.mean
    se = math.sqrt(se_b**2 + se_c**2) if math.isfinite(se_b) and math.isfinite(se_c) else float("inf")
    z = diff / se if se > 0 and math.isfinite(se) else 0.0
    p = normal_sf(-z) if direction == "down" else normal_sf(z)
    if not math.isfinite(se):
        p = 1.0

    def back(x: float) -> float:
        if scale == "log":
            return math.exp(min(x, 700.0))
        if scale == "count":
            return math.expm1(min(x, 700.0))
        return x

    def est(m: Moments, s: float) -> Estimate:
        half = Z95 * s if math.isfinite(s) else float("inf")
        return Estimate(back(m.mean), m.n, back(m.mean - half), back(m.mean + half))

    half = Z95 * se
    if log_scale:
        effect = math.exp(diff)
        effect_ci = (math.exp(diff - half), math.exp(diff + half)) if math.isfinite(half) else (0.0, math.inf)
    else:
        effect = diff
        effect_ci = (diff - half, diff + half)
    return Comparison(est(base, se_b), est(cur, se_c), effect, effect_ci, p)
