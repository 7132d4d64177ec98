"""SequentialConfirm: the contract (confirm / withdraw / undecided), its exact ratios, and its error
rates checked by seeded simulation against a one-sided binomial bound."""

from __future__ import annotations

import doctest
import math
import random

import numpy as np
import pytest

from driftwatch._stats import Moments
from driftwatch.detectors import LaggedSR, _sequential
from driftwatch.detectors._sequential import SequentialConfirm


def binomial_upper(n: int, p: float, tail: float = 1e-3) -> int:
    """The smallest k with P(Binomial(n, p) > k) <= tail: a one-sided bound at level ``tail``."""
    cdf = 0.0
    for k in range(n + 1):
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if 1 - cdf <= tail:
            return k
    return n


def moments(values: list[float]) -> Moments:
    m = Moments()
    for v in values:
        m.add(v)
    return m


def run(test: SequentialConfirm, draw: random.Random, value: float, kind: str, cap: int = 5000) -> str:
    while test.decision == "undecided" and test.n < cap:
        test.update(float(draw.random() < value) if kind == "binary" else draw.gauss(value, 1.0))
    return test.decision


def test_doctest() -> None:
    """The class doctest (a seeded change that is paged, a false alarm that is withdrawn) passes."""
    result = doctest.testmod(_sequential)
    assert result.attempted >= 1 and result.failed == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "count"}, "kind"),
        ({"direction": "both"}, "direction"),
        ({"alpha": 0.0}, "alpha"),
        ({"beta": 1.0}, "alpha and beta"),
        ({"shifts": ()}, "shifts"),
        ({"min_shift": 0.0}, "min_shift"),
        ({"design": "gs"}, "design"),
        ({"baseline_weight": 0.0}, "baseline_weight"),
        ({"baseline": Moments(1, 0.5, 0.0)}, "at least 2"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"kind": "binary", "baseline": Moments(100, 0.5, 25.0), "direction": "down"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        SequentialConfirm(**args)  # type: ignore[arg-type]


def test_decision_is_sticky_and_reported() -> None:
    """Once decided, updates are ignored; state() says which test decided on how many observations."""
    test = SequentialConfirm("numeric", Moments(1000, 0.0, 999.0), "up")
    while not test.confirmed:
        test.update(2.0)
    n = test.n
    test.update(-50.0)
    assert (test.decision, test.n) == ("confirm", n)
    state = test.state()
    assert state["test"] == "sequential-mixture" and state["fresh_n"] == n and state["decision"] == "confirm"
    assert test.log_evidence >= math.log(1 / test.alpha)


def test_numeric_ratio_is_the_exact_predictive_likelihood_ratio() -> None:
    """For numeric values the log ratio equals the Gaussian likelihood ratio of the fresh deviations
    from the baseline's mean, whose covariance I + J / n0 carries the baseline's error."""
    rng = np.random.default_rng(5)
    n0, n, delta = 40, 7, 0.3
    base = moments(list(rng.normal(0.0, 1.0, n0)))
    sd = math.sqrt(base.var)
    fresh = rng.normal(0.2, 1.0, n)
    test = SequentialConfirm("numeric", base, "up", shifts=(delta,), min_shift=delta)
    d = (fresh - base.mean) / sd
    cov = np.eye(n) + np.ones((n, n)) / n0
    inv = np.linalg.inv(cov)

    def loglik(mean: float) -> float:
        r = d - mean
        return float(-0.5 * r @ inv @ r)

    expected = loglik(delta) - loglik(0.0)
    confirm, withdraw = test.log_ratios(n, float(fresh.sum()))
    assert confirm == pytest.approx(expected, rel=1e-9)
    assert withdraw == pytest.approx(expected, rel=1e-9)


def test_binary_ratio_with_a_huge_baseline_is_the_bernoulli_ratio() -> None:
    """With a baseline so large that its rate is known, the binary ratio is the plain Bernoulli one."""
    p, delta = 0.5, 0.3
    test = SequentialConfirm("binary", Moments(10**9, p, 10**9 * p * (1 - p)), "down", shifts=(delta,))
    q = p - delta * math.sqrt(p * (1 - p))
    k, n = 12, 40
    expected = k * math.log(q / p) + (n - k) * math.log((1 - q) / (1 - p))
    assert test.log_ratios(n, k)[0] == pytest.approx(expected, abs=1e-3)


# Error rates by simulation. Each checks a count against the one-sided binomial bound at 1e-3
# (P(count > bound) <= 0.001 when the true rate is the nominal one): a seeded test that passes
# here would fail by chance once in a thousand seeds, so a failure means the rate is too high.
ALPHA, BETA = 0.05, 0.01


@pytest.mark.parametrize(
    ("kind", "rate", "reps"), [("numeric", 0.0, 1000), ("binary", 0.51, 250), ("binary", 0.9, 250)]
)
def test_false_confirmations_within_alpha_with_an_estimated_baseline(
    kind: str, rate: float, reps: int
) -> None:
    """No change, a baseline of 500 estimated observations: P(confirm within 1,000 fresh
    observations) <= alpha, both directions (later confirmations are rarer still: the ratio's
    weight on new values falls as n0 / (n0 + n))."""
    draw = random.Random(11)
    confirmed = 0
    for i in range(reps):
        values = [
            float(draw.random() < rate) if kind == "binary" else draw.gauss(rate, 1.0) for _ in range(500)
        ]
        test = SequentialConfirm(kind, moments(values), "down" if i % 2 else "up", alpha=ALPHA, beta=BETA)  # type: ignore[arg-type]
        confirmed += run(test, draw, rate, kind, cap=1000) == "confirm"
    assert confirmed <= binomial_upper(reps, ALPHA), (confirmed, reps)


@pytest.mark.parametrize(("kind", "rate", "reps"), [("numeric", 0.0, 600), ("binary", 0.51, 250)])
def test_real_changes_of_min_shift_withdrawn_within_beta(kind: str, rate: float, reps: int) -> None:
    """A change of exactly ``min_shift`` (0.2 sd) in the alarm's direction: P(withdraw) <= beta."""
    draw = random.Random(12)
    withdrawn = 0
    for _ in range(reps):
        values = [
            float(draw.random() < rate) if kind == "binary" else draw.gauss(rate, 1.0) for _ in range(1000)
        ]
        base = moments(values)
        test = SequentialConfirm(kind, base, "down", alpha=ALPHA, beta=BETA)  # type: ignore[arg-type]
        sd = 1.0 if kind == "numeric" else math.sqrt(rate * (1 - rate))
        withdrawn += run(test, draw, rate - 0.2 * sd, kind) == "withdraw"
    assert withdrawn <= binomial_upper(reps, BETA), (withdrawn, reps)


def test_no_change_is_withdrawn_on_evidence_not_left_open() -> None:
    """Under no change nearly every candidate is withdrawn, after about log(1/beta) / KL(min_shift)
    observations (4.6 / 0.02 = 230), rather than staying undecided."""
    draw = random.Random(13)
    decisions, sizes = [], []
    for _ in range(300):
        test = SequentialConfirm("numeric", moments([draw.gauss(0, 1) for _ in range(2000)]), "up")
        decisions.append(run(test, draw, 0.0, "numeric", cap=3000))
        sizes.append(test.n)
    assert decisions.count("withdraw") >= 0.9 * len(decisions)
    assert 150 <= float(np.median(sizes)) <= 350


def test_pipeline_pages_a_real_change_and_withdraws_a_false_alarm() -> None:
    """With LaggedSR as stage one: a seeded 0.51 → 0.38 change is paged on fresh data; a seeded false
    alarm (stage one at a loose budget on an unchanged stream) is withdrawn on evidence."""

    def pipeline(rates: list[tuple[float, int]], budget: float, seed: int) -> tuple[str, int]:
        draw = random.Random(seed)
        det = LaggedSR(kind="binary", budget=budget)
        stream = [float(draw.random() < r) for r, count in rates for _ in range(count)]
        for i, x in enumerate(stream):
            det.update(x)
            if det.drift_detected and det.direction is not None:
                before, _ = det.split()
                test = SequentialConfirm("binary", before, det.direction)
                for y in stream[i + 1 :]:
                    test.update(y)
                    if test.decision != "undecided":
                        return test.decision, test.n
                return "undecided", test.n
        return "no alarm", 0

    decision, n = pipeline([(0.51, 1000), (0.38, 1500)], 1e-4, seed=1)
    assert decision == "confirm" and n <= 200
    decision, n = pipeline([(0.51, 5000)], 1e-2, seed=2)
    assert decision == "withdraw"


@pytest.mark.parametrize(("rate", "direction"), [(0.0, "down"), (1.0, "up")])
def test_a_change_past_the_end_of_the_range_is_withdrawn(rate: float, direction: str) -> None:
    """A fall from a 0% baseline (a rise from 100%) is withdrawn at once, not confirmed by more zeros."""
    test = SequentialConfirm("binary", Moments(7, rate, 0.0), direction, baseline_weight=0.5, min_shift=0.75)
    for _ in range(500):
        test.update(rate)
    assert test.withdrawn and test.n == 1
