"""Statistics helpers: BH q-values, exact McNemar, t tails, paired and two-sided comparisons, compare_runs."""

from __future__ import annotations

import math
import random

import pytest

from driftwatch._stats import (
    Moments,
    benjamini_hochberg,
    binomial_two_sided,
    compare_means,
    compare_paired_binary,
    compare_paired_means,
    compare_proportions,
    compare_runs,
    student_t_quantile,
    student_t_sf,
)


def moments(values: list[float]) -> Moments:
    m = Moments()
    for x in values:
        m.add(x)
    return m


def test_benjamini_hochberg_matches_a_hand_computed_example() -> None:
    """q-values by hand: sorted p 0.005, 0.01, 0.03, 0.04, 0.2, 0.5 times m/rank, then the running minimum."""
    p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.2]
    # p * 6 / rank: 0.005*6/1 = 0.03, 0.01*6/2 = 0.03, 0.03*6/3 = 0.06, 0.04*6/4 = 0.06,
    # 0.2*6/5 = 0.24, 0.5*6/6 = 0.5 (already increasing, so no minimum changes anything).
    assert benjamini_hochberg(p) == pytest.approx([0.03, 0.06, 0.06, 0.03, 0.5, 0.24])
    # At alpha 0.05 the step-up rule rejects the two smallest only: 0.03/6*3 = 0.025 < 0.03.
    assert [q <= 0.05 for q in benjamini_hochberg(p)] == [True, False, False, True, False, False]


def test_benjamini_hochberg_step_up_rescues_a_larger_rank() -> None:
    """A p-value above its own threshold is still rejected when a larger rank passes (step-up)."""
    # Thresholds at 0.05: 0.0167, 0.0333, 0.05. 0.02 > 0.0167, but 0.04 <= 0.05 carries all three.
    assert [q <= 0.05 for q in benjamini_hochberg([0.02, 0.04, 0.035])] == [True, True, True]
    assert benjamini_hochberg([]) == [] and benjamini_hochberg([0.3]) == [0.3]


def test_exact_mcnemar_is_twice_the_smaller_binomial_tail() -> None:
    """binomial_two_sided(k, n) = 2 P(X <= min(k, n - k)) at p = 1/2, capped at 1."""
    assert binomial_two_sided(2, 25) == pytest.approx(2 * (1 + 25 + 300) / 2**25)
    assert binomial_two_sided(11, 13) == pytest.approx(2 * (1 + 13 + 78) / 2**13)
    assert binomial_two_sided(5, 10) == 1.0 and binomial_two_sided(0, 0) == 1.0


def test_student_t_matches_tables() -> None:
    """t tails and quantiles agree with printed tables (t_0.975 at df 9 = 2.262, df 30 = 2.042)."""
    assert student_t_quantile(0.975, 9) == pytest.approx(2.2622, abs=1e-4)
    assert student_t_quantile(0.975, 30) == pytest.approx(2.0423, abs=1e-4)
    assert student_t_sf(2.2622, 9) == pytest.approx(0.025, abs=1e-5)
    assert student_t_sf(0.0, 4) == pytest.approx(0.5)
    assert student_t_sf(-1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert student_t_sf(1.96, math.inf) == pytest.approx(0.025, abs=1e-4)


def test_two_sided_proportions_is_twice_the_one_sided() -> None:
    """The two-sided p-value doubles the one-sided one in the direction of the effect."""
    base, cur = Moments(200, 0.7, 200 * 0.21), Moments(200, 0.6, 200 * 0.24)
    one = compare_proportions(base, cur, "down").p_value
    assert compare_proportions(base, cur, "two-sided").p_value == pytest.approx(2 * one)
    with pytest.raises(ValueError, match="direction: expected one of up, down, two-sided"):
        compare_proportions(base, cur, "sideways")


def test_welch_ratio_of_geometric_means() -> None:
    """On the log scale the effect is the ratio of geometric means, with an interval around it."""
    rng = random.Random(3)
    base = moments([math.log(rng.lognormvariate(0.0, 0.5)) for _ in range(300)])
    cur = moments([math.log(rng.lognormvariate(math.log(2.0), 0.5)) for _ in range(300)])
    result = compare_means(base, cur, "two-sided", scale="log")
    assert result.effect_ci[0] < 2.0 < result.effect_ci[1] and result.effect == pytest.approx(2.0, rel=0.1)
    assert result.p_value < 1e-10


def test_paired_binary_counts_discordant_pairs() -> None:
    """McNemar uses only tasks that changed; Newcombe's paired interval matches his 1998 example."""
    # Newcombe (1998), Statistics in Medicine 17:2635, example (a): 36 both, 12 and 2 discordant.
    pairs = [(1.0, 1.0)] * 36 + [(0.0, 1.0)] * 12 + [(1.0, 0.0)] * 2
    result = compare_paired_binary(pairs)
    assert result.effect == pytest.approx(0.2)
    assert result.effect_ci == pytest.approx((0.0569, 0.3404), abs=1e-4)
    assert result.p_value == pytest.approx(binomial_two_sided(2, 14))


def test_paired_means_removes_task_spread() -> None:
    """Tasks differ widely but each gets 10% slower: the paired test sees it, the unpaired one barely."""
    rng = random.Random(8)
    before = [rng.gauss(0.0, 2.0) for _ in range(40)]
    pairs = [(b, b + math.log(1.1) + rng.gauss(0.0, 0.02)) for b in before]
    paired = compare_paired_means(pairs, scale="log")
    unpaired = compare_means(moments(before), moments([a for _, a in pairs]), "two-sided", scale="log")
    assert paired.effect == pytest.approx(1.1, rel=0.01) and paired.p_value < 1e-10
    assert unpaired.p_value > 0.5


def test_compare_runs_flags_only_real_differences() -> None:
    """Runs against a baseline with BH: a big drop differs, equal runs do not; bad input is named."""
    results = compare_runs((94, 132), [(94, 133), (69, 132), (96, 133)])
    assert [r.differs for r in results] == [False, True, False]
    assert results[1].comparison.effect < 0 and results[1].q_value == pytest.approx(
        3 * results[1].comparison.p_value
    )
    with pytest.raises(ValueError, match=r"runs\[0\]: expected \(passes, n\)"):
        compare_runs((1, 2), [(3, 2)])


def test_student_t_quantile_matches_scipy_across_df_and_tails() -> None:
    """The Newton quantile agrees with scipy's t.ppf to 1e-9 (relative) from df 1 to 10^6."""
    from scipy import stats

    for df in (1, 1.5, 2, 3, 4.7, 10, 29, 57.31, 120, 1000, 12345.6, 1e6):
        for p in (1e-15, 1e-6, 0.001, 0.025, 0.3, 0.5, 0.7, 0.975, 0.999999):
            expected = float(stats.t.ppf(p, df))
            assert student_t_quantile(p, df) == pytest.approx(expected, rel=1e-9, abs=1e-12), (df, p)
