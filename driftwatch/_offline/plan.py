"""Sample-size planning for ``driftwatch compare``: exact power of the tests it runs on pass/fail.

Power is computed exactly, by enumerating every outcome the test can see, for the two tests
``compare`` uses on pass rates:

- unpaired: the two-sided two-proportion z-test with the pooled rate (both sides binomial);
- paired (the same task ids on both sides, once each): the two-sided exact McNemar test, with the
  number of discordant pairs binomial and the losses among them binomial.

The paired case needs the share of discordant pairs (tasks that pass on one side and fail on the
other). When it is not known it is taken as if the two sides were independent,
``p0 (1 - p1) + (1 - p0) p1``, which is what it is for unrelated tasks and more than it usually is
for the same tasks run twice (a hard task tends to fail on both sides), so the plan errs on the
side of more cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Plan",
    "independent_discordance",
    "mde_mcnemar",
    "mde_two_proportions",
    "plan_cases",
    "power_mcnemar",
    "power_two_proportions",
    "to_plan_text",
]

#: Above this many cases per side the exact enumeration (O(n²)) gives way to the normal formula.
EXACT_MAX = 3000
#: Searches stop here: a plan needing more cases than this says so instead.
N_MAX = 100_000

_LOG_FACT = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, EXACT_MAX + 2, dtype=float)))])


def _log_fact(n: int) -> np.ndarray[Any, Any]:
    global _LOG_FACT
    if n + 1 >= len(_LOG_FACT):
        _LOG_FACT = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, 2 * n + 2, dtype=float)))])
    return _LOG_FACT


def _pmf(n: int, p: float) -> np.ndarray[Any, Any]:
    """Binomial(n, p) probabilities of 0..n."""
    k = np.arange(n + 1)
    if p <= 0.0:
        return np.asarray((k == 0).astype(float))
    if p >= 1.0:
        return np.asarray((k == n).astype(float))
    lf = _log_fact(n)
    logp = lf[n] - lf[k] - lf[n - k] + k * math.log(p) + (n - k) * math.log1p(-p)
    return np.asarray(np.exp(logp))


def _z(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def _check(alpha: float, power: float | None = None) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number between 0 and 1, got {alpha!r}")
    if power is not None and not 0 < power < 1:
        raise ValueError(f"power: expected a number between 0 and 1, got {power!r}")


def power_two_proportions(p0: float, p1: float, n0: int, n1: int, alpha: float = 0.05) -> float:
    """Exact power of the two-sided pooled two-proportion z-test at ``alpha`` (``compare``'s unpaired test).

    Sums the probability of every pair of pass counts whose p-value is at most ``alpha``; above
    ``EXACT_MAX`` cases per side, the normal approximation.
    """
    _check(alpha)
    if n0 < 1 or n1 < 1:
        return 0.0
    zcrit = _z(1 - alpha / 2)
    if max(n0, n1) > EXACT_MAX:
        pbar = (n0 * p0 + n1 * p1) / (n0 + n1)
        se0 = math.sqrt(max(pbar * (1 - pbar), 1e-12) * (1 / n0 + 1 / n1))
        se1 = math.sqrt(max(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1, 1e-12))
        d = p1 - p0
        return float(
            0.5 * math.erfc((zcrit * se0 - d) / se1 / math.sqrt(2))
            + 0.5 * math.erfc((zcrit * se0 + d) / se1 / math.sqrt(2))
        )
    k0 = np.arange(n0 + 1)[:, None]
    k1 = np.arange(n1 + 1)[None, :]
    pooled = (k0 + k1) / (n0 + n1)
    se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * (1 / n0 + 1 / n1))
    z = np.abs(k1 / n1 - k0 / n0) / se
    reject = z >= zcrit - 1e-12
    return float(np.clip(_pmf(n0, p0) @ (reject @ _pmf(n1, p1)), 0.0, 1.0))


def _mcnemar_critical(d_max: int, alpha: float) -> np.ndarray[Any, Any]:
    """Per number of discordant pairs d, the largest k with exact two-sided p(k, d) <= alpha (-1: none)."""
    out = np.full(d_max + 1, -1, dtype=int)
    for d in range(1, d_max + 1):
        cdf = np.cumsum(_pmf(d, 0.5))
        ok = np.nonzero(np.minimum(1.0, 2 * cdf[: d // 2 + 1]) <= alpha * (1 + 1e-12))[0]
        out[d] = int(ok[-1]) if len(ok) else -1
    return out


_CRIT: dict[float, np.ndarray[Any, Any]] = {}


def power_mcnemar(p0: float, p1: float, discordance: float, n: int, alpha: float = 0.05) -> float:
    """Exact power of the two-sided exact McNemar test on ``n`` pairs (``compare``'s paired test).

    ``p0`` and ``p1`` are the pass rates before and after; ``discordance`` the share of pairs that
    differ (raised to ``|p1 - p0|`` when below it, the least it can be).
    """
    _check(alpha)
    if n < 1:
        return 0.0
    delta = p1 - p0
    psi = min(1.0, max(discordance, abs(delta)))
    if psi <= 0:
        return 0.0
    gained = (psi + delta) / 2 / psi  # share of the discordant pairs that pass only after
    if n > EXACT_MAX:
        zcrit = _z(1 - alpha / 2)
        se0, se1 = math.sqrt(psi / n), math.sqrt(max(psi - delta * delta, 1e-12) / n)
        return float(
            0.5 * math.erfc((zcrit * se0 - delta) / se1 / math.sqrt(2))
            + 0.5 * math.erfc((zcrit * se0 + delta) / se1 / math.sqrt(2))
        )
    crit = _CRIT.get(alpha)
    if crit is None or len(crit) <= n:
        crit = _CRIT[alpha] = _mcnemar_critical(max(n, 2 * len(crit) if crit is not None else 64), alpha)
    pd = _pmf(n, psi)
    total = 0.0
    for d in range(1, n + 1):
        c = int(crit[d])
        if c < 0 or pd[d] < 1e-15:
            continue
        pk = _pmf(d, gained)
        total += float(pd[d]) * float(pk[: c + 1].sum() + pk[d - c :].sum())
    return min(1.0, total)


def independent_discordance(p0: float, p1: float) -> float:
    """The share of discordant pairs when the two sides are independent: p0 (1 - p1) + (1 - p0) p1."""
    return p0 * (1 - p1) + (1 - p0) * p1


def _smallest_n(power_at: Any, target: float) -> int | None:
    """The smallest n with power_at(n) >= target (power is not monotone in n for exact tests: the
    answer is the first n from which it stays above, checked on the next few)."""
    lo, hi = 1, 2
    while power_at(hi) < target:
        lo, hi = hi, hi * 2
        if hi > N_MAX:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    n = hi
    # Saw-tooth: step on until the next five sizes keep the power.
    while any(power_at(n + j) < target for j in range(1, 6)):
        n += 1
    return n


@dataclass(slots=True, frozen=True)
class Plan:
    """Cases needed to detect a change of ``effect`` from ``rate`` with ``power`` at ``alpha``."""

    rate: float
    effect: float
    alpha: float
    power: float
    paired: bool
    discordance: float | None
    cases: int | None
    """Cases per side (pairs when paired); None when more than ``N_MAX`` would be needed."""
    achieved: float
    """The exact power at ``cases``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "effect": self.effect,
            "alpha": self.alpha,
            "power": self.power,
            "paired": self.paired,
            "discordance": self.discordance,
            "cases_per_side": self.cases,
            "achieved_power": self.achieved,
        }


def plan_cases(
    rate: float,
    effect: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    paired: bool = False,
    discordance: float | None = None,
) -> Plan:
    """Cases per side for the exact test to find a change of ``effect`` (signed, e.g. -0.1) from ``rate``."""
    _check(alpha, power)
    if not 0 <= rate <= 1:
        raise ValueError(f"rate: expected a pass rate between 0 and 1, got {rate!r}")
    p1 = rate + effect
    if effect == 0 or not 0 <= p1 <= 1:
        raise ValueError(
            f"effect: {effect:+g} from a rate of {rate:g} gives {p1:g}; expected a non-zero change that "
            "stays between 0 and 1 (e.g. --effect -0.1 for ten points down)"
        )
    if paired:
        psi = independent_discordance(rate, p1) if discordance is None else discordance
        if not 0 <= psi <= 1:
            raise ValueError(f"discordance: expected a share between 0 and 1, got {psi!r}")
        psi = max(psi, abs(effect))
        n = _smallest_n(lambda m: power_mcnemar(rate, p1, psi, m, alpha), power)
        got = power_mcnemar(rate, p1, psi, n, alpha) if n else 0.0
        return Plan(rate, effect, alpha, power, True, psi, n, got)
    n = _smallest_n(lambda m: power_two_proportions(rate, p1, m, m, alpha), power)
    got = power_two_proportions(rate, p1, n, n, alpha) if n else 0.0
    return Plan(rate, effect, alpha, power, False, None, n, got)


def _smallest_effect(power_of: Any, rate: float, target: float) -> float:
    """The smallest change (0.5-point grid, bisection) whose power, a drop or a rise from ``rate``,
    reaches ``target``; inf when no change that keeps the rate within 0..1 does."""

    def ok(i: int) -> bool:
        d = i / 200
        return any(power_of(rate, r) >= target for r in (rate - d, rate + d) if 0 <= r <= 1)

    hi = int(max(rate, 1 - rate) * 200 + 1e-9)
    if hi < 1 or not ok(hi):
        return math.inf
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi / 200


def mde_two_proportions(rate: float, n0: int, n1: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest change from ``rate`` (either way, 0.5-point grid) that the unpaired test finds with
    ``power``; inf when none can be."""
    _check(alpha, power)
    return _smallest_effect(lambda p0, p1: power_two_proportions(p0, p1, n0, n1, alpha), rate, power)


def mde_mcnemar(
    rate: float, n: int, discordance: float | None = None, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest change from ``rate`` (either way) that the exact McNemar test on ``n`` pairs finds
    with ``power``; inf when none can be.

    ``discordance`` is the share of discordant pairs (None: as for independent sides at each
    change); it is raised to the change when below it.
    """
    _check(alpha, power)

    def at(p0: float, p1: float) -> float:
        psi = independent_discordance(p0, p1) if discordance is None else discordance
        return power_mcnemar(p0, p1, psi, n, alpha)

    return _smallest_effect(at, rate, power)


def _fmt_plan(p: Plan) -> str:
    if p.cases is None:
        return f"more than {N_MAX:,}"
    return f"{p.cases:,} {'pairs' if p.paired else 'cases a side'}"


def to_plan_text(plans: Sequence[Plan]) -> str:
    """The answer to ``compare --plan --rate P --effect X`` in lines."""
    first = plans[0]
    out = [
        f"plan: a change of {first.effect * 100:+.1f} points from {first.rate:.1%} "
        f"(two-sided α = {first.alpha:g}, power {first.power:.0%}, exact tests)"
    ]
    for p in plans:
        if p.paired:
            how = f"paired (exact McNemar), {p.discordance:.0%} of pairs differ" + (
                " (as for independent sides)" if p is plans[1] else ""
            )
        else:
            how = "unpaired (two-proportion z-test)"
        out.append(f"  {how}: {_fmt_plan(p)} (power {p.achieved:.1%})")
    out.append(
        "  Pairs beat separate samples only when fewer pairs differ than independence implies (the same "
        "tasks on both sides usually do); --discordance sets the share seen in an earlier comparison."
    )
    return "\n".join(out) + "\n"
