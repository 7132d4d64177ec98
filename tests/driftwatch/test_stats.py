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


# -- against an independent reference (scipy) --------------------------------------------------------
def test_wilson_interval_matches_scipy() -> None:
    """wilson_interval equals scipy's binomtest(...).proportion_ci(method="wilson")."""
    from scipy import stats

    from driftwatch._stats import wilson_interval

    for k, n in ((0, 1), (0, 20), (1, 20), (7, 20), (20, 20), (94, 132), (501, 1000), (3, 10_000)):
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12), (k, n)


def test_newcombe_difference_interval_from_scipy_wilson_limits() -> None:
    """compare_proportions' effect interval is Newcombe's method 10 built from scipy's Wilson limits,
    and its two-sided p-value is the uncorrected chi-square test of the 2x2 table."""
    from scipy import stats

    for (kb, nb), (kc, nc) in (((160, 200), (100, 200)), ((94, 132), (69, 132)), ((5, 50), (9, 40))):
        base, cur = Moments(nb, kb / nb, kb * (nb - kb) / nb), Moments(nc, kc / nc, kc * (nc - kc) / nc)
        result = compare_proportions(base, cur, "two-sided")
        b = stats.binomtest(kb, nb).proportion_ci(0.95, method="wilson")
        c = stats.binomtest(kc, nc).proportion_ci(0.95, method="wilson")
        pb, pc = kb / nb, kc / nc
        low = pc - pb - math.sqrt((pc - c.low) ** 2 + (b.high - pb) ** 2)
        high = pc - pb + math.sqrt((c.high - pc) ** 2 + (pb - b.low) ** 2)
        assert result.effect_ci == pytest.approx((low, high), abs=1e-12)
        table = [[kb, nb - kb], [kc, nc - kc]]
        p = stats.chi2_contingency(table, correction=False).pvalue
        assert result.p_value == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize("direction", ["up", "down", "two-sided"])
def test_welch_matches_scipy(direction: str) -> None:
    """compare_means' p-value is scipy's Welch t-test (ttest_ind, equal_var=False), each alternative."""
    from scipy import stats

    rng = random.Random(21)
    alternative = {"up": "greater", "down": "less", "two-sided": "two-sided"}[direction]
    for nb, nc, shift, sd in ((300, 40, 0.2, 2.0), (12, 9, -0.5, 0.7), (1000, 1000, 0.01, 1.0)):
        b = [rng.gauss(0.0, 1.0) for _ in range(nb)]
        c = [rng.gauss(shift, sd) for _ in range(nc)]
        result = compare_means(moments(b), moments(c), direction, scale="linear")
        expected = stats.ttest_ind(c, b, equal_var=False, alternative=alternative)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-7, abs=1e-300)
        ci = expected.confidence_interval(0.95)
        if direction == "two-sided":
            assert result.effect_ci == pytest.approx((ci.low, ci.high), rel=1e-7)


def test_paired_tests_match_scipy() -> None:
    """Paired t (compare_paired_means) is scipy's ttest_rel; exact McNemar is binomtest(k, n, 0.5)."""
    from scipy import stats

    rng = random.Random(5)
    before = [rng.gauss(0.0, 2.0) for _ in range(25)]
    after = [b + rng.gauss(0.1, 0.3) for b in before]
    result = compare_paired_means(list(zip(before, after, strict=True)), scale="linear")
    expected = stats.ttest_rel(after, before)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    ci = expected.confidence_interval(0.95)
    assert result.effect_ci == pytest.approx((ci.low, ci.high), rel=1e-9)
    for k, n in ((0, 1), (2, 14), (5, 10), (11, 13), (40, 100)):
        assert binomial_two_sided(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-12)


def test_within_margin_is_a_shifted_welch_test_and_agresti_caffo() -> None:
    """Non-inferiority p-values: Welch's t against the baseline shifted by the margin (scipy), and the
    Agresti–Caffo z for pass/fail (computed by hand, normal tail from scipy)."""
    from scipy import stats

    from driftwatch._stats import within_margin

    rng = random.Random(2)
    b = [rng.gauss(0.0, 1.0) for _ in range(400)]
    c = [rng.gauss(-0.1, 1.2) for _ in range(150)]
    shifted_down = [x - 0.3 for x in b]
    expected = stats.ttest_ind(c, shifted_down, equal_var=False, alternative="greater").pvalue
    assert within_margin(moments(b), moments(c), 0.3, "down", binary=False) == pytest.approx(
        expected, rel=1e-7
    )
    shifted_up = [x + 0.3 for x in b]
    expected = stats.ttest_ind(c, shifted_up, equal_var=False, alternative="less").pvalue
    assert within_margin(moments(b), moments(c), 0.3, "up", binary=False) == pytest.approx(expected, rel=1e-7)
    # 160/200 at the baseline, 140/180 now, margin 0.1 below: add a pass and a fail to each side.
    pb, pc = 161 / 202, 141 / 182
    se = math.sqrt(pb * (1 - pb) / 202 + pc * (1 - pc) / 182)
    base, cur = Moments(200, 0.8, 32.0), Moments(180, 140 / 180, 140 * 40 / 180)
    got = within_margin(base, cur, 0.1, "down", binary=True)
    assert got == pytest.approx(stats.norm.sf((pc - pb + 0.1) / se), rel=1e-9)
    assert within_margin(base, cur, 0.1, "up", binary=True) == pytest.approx(
        stats.norm.sf((0.1 - (pc - pb)) / se), rel=1e-9
    )
    # A partial recovery (0.65 against 0.8, margin 0.1) is not within the margin; a full one is.
    partial = Moments(300, 0.65, 300 * 0.65 * 0.35)
    full = Moments(300, 0.8, 300 * 0.16)
    assert within_margin(Moments(800, 0.8, 128.0), partial, 0.1, "down", binary=True) > 0.5
    assert within_margin(Moments(800, 0.8, 128.0), full, 0.1, "down", binary=True) < 1e-3
    with pytest.raises(ValueError, match="worse"):
        within_margin(base, cur, 0.1, "two-sided", binary=True)
