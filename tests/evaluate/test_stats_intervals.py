"""Bootstrap intervals, McNemar, the paired bootstrap and the length baselines, each checked against a hand
computation or an exact distribution worked out independently here (a bootstrap of 0/1 values has a known exact
resampling distribution: binomial, or a convolution / multinomial of them)."""

from __future__ import annotations

import math

import pytest

from realm_cli.evaluate import reward_bench as rb
from realm_cli.evaluate import stats


def binomial_pmf(n: int, p: float) -> dict[int, float]:
    return {k: math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(n + 1)}


def tails(dist: dict[float, float], low: float, high: float) -> tuple[float, float, float, float]:
    """P(S < low), P(S <= low), P(S > high), P(S >= high) of an exact distribution {value: probability}."""
    eps = 1e-12
    return (sum(p for v, p in dist.items() if v < low - eps), sum(p for v, p in dist.items() if v <= low + eps),
            sum(p for v, p in dist.items() if v > high + eps), sum(p for v, p in dist.items() if v >= high - eps))


def assert_percentile_bounds(dist: dict[float, float], low: float, high: float) -> None:
    """A 95% percentile interval cuts about 2.5% from each side of the exact resampling distribution: allowing for
    1000 resamples (Monte Carlo sd of a 2.5% tail about 0.005) and for the distribution's atoms."""
    below, at_or_below, above, at_or_above = tails(dist, low, high)
    assert below <= 0.045 and at_or_below >= 0.01, (low, below, at_or_below)
    assert above <= 0.045 and at_or_above >= 0.01, (high, above, at_or_above)


def test_interval_of_a_proportion_matches_the_exact_binomial_bootstrap():
    values = [1] * 24 + [0] * 16  # accuracy 0.6 on 40 pairs
    low, high = stats.bootstrap_ci(values)
    # resampling 40 items with replacement: the mean is Binomial(40, 0.6) / 40 exactly
    dist = {k / 40: p for k, p in binomial_pmf(40, 0.6).items()}
    assert_percentile_bounds(dist, low, high)
    assert low < 0.6 < high
    # the normal approximation 0.6 ± 1.96 * sqrt(0.6 * 0.4 / 40) = [0.448, 0.752] agrees to within one step (1/40)
    assert low == pytest.approx(0.6 - 1.96 * math.sqrt(0.24 / 40), abs=1 / 40)
    assert high == pytest.approx(0.6 + 1.96 * math.sqrt(0.24 / 40), abs=1 / 40)
    assert stats.bootstrap_ci(values) == (low, high)  # seeded: the same scores give the same interval


def test_degenerate_and_empty_intervals():
    assert stats.bootstrap_ci([1, 1, 1]) == (1.0, 1.0)
    assert stats.bootstrap_ci([0.5] * 7) == (0.5, 0.5)
    low, high = stats.bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)


def test_accuracy_summary_fields_for_train_rm():
    out = stats.accuracy_summary([True, False, None, True, True])
    assert set(out) == {"accuracy", "n", "unscored", "ci95", "ci_resamples", "ci_seed"}
    assert out["accuracy"] == 0.75 and out["n"] == 4 and out["unscored"] == 1  # 3 of the 4 scored pairs
    assert (out["ci_resamples"], out["ci_seed"]) == (1000, 0)
    # 4 pairs, 3 right: the resampled accuracy is Binomial(4, 0.75) / 4; P(0) = 1/256 < 2.5%, P(<= 1/4) = 13/256
    assert out["ci95"] == [0.25, 1.0]
    assert stats.format_ci(out["accuracy"], out["ci95"]) == "0.750 [0.250, 1.000]"
    assert stats.format_ci(float("nan"), [0.1, 0.2]) == "n/a"


def test_section_interval_resamples_within_subsets_and_keeps_the_official_weights():
    # llmbar-natural (weight 100): 7 of 10 right; llmbar-adver-neighbor (weight 134): 5 of 20 right
    correct = {"llmbar-natural": [1.0] * 7 + [0.0] * 3, "llmbar-adver-neighbor": [1.0] * 5 + [0.0] * 15}
    outcomes = [(s, bool(v)) for s, vs in correct.items() for v in vs]
    summary = rb.v1_summary(outcomes)
    rb.v1_intervals(summary, correct, resamples=1000, seed=0)
    section = summary["sections"]["Chat Hard"]
    assert section["score"] == pytest.approx((0.7 * 100 + 0.25 * 134) / 234)
    # exact stratified resampling distribution: 100/234 * K1/10 + 134/234 * K2/20, K1 ~ B(10, .7), K2 ~ B(20, .25)
    dist: dict[float, float] = {}
    for k1, p1 in binomial_pmf(10, 0.7).items():
        for k2, p2 in binomial_pmf(20, 0.25).items():
            value = round((100 * k1 / 10 + 134 * k2 / 20) / 234, 12)
            dist[value] = dist.get(value, 0.0) + p1 * p2
    assert_percentile_bounds(dist, *section["ci95"])
    # a pooled resample (ignoring the subsets) would centre on 12/30 = 0.4, not on the weighted 0.442
    assert summary["overall_ci95"] == section["ci95"]  # one section: the overall is that section
    subset = summary["subsets"]["llmbar-natural"]
    assert_percentile_bounds({k / 10: p for k, p in binomial_pmf(10, 0.7).items()}, *subset["ci95"])
    assert (subset["ci_resamples"], subset["ci_seed"]) == (1000, 0)


def test_mcnemar_exact_and_chi_square_by_hand():
    # b = 1 (only A right), c = 6 (only B right), 3 both right: exact, 2 * P(X <= 1), X ~ B(7, 1/2) = 2 * 8/128
    a = [True] + [False] * 6 + [True] * 3
    b = [False] + [True] * 6 + [True] * 3
    out = stats.mcnemar(a, b)
    assert (out["b"], out["c"], out["test"]) == (1, 6, "mcnemar-exact")
    assert out["p_value"] == pytest.approx(0.125) and out["significant"] is False
    # b = 10, c = 25 (35 discordant): chi2 = (|10 - 25| - 1)^2 / 35 = 5.6, p = erfc(sqrt(5.6 / 2)) = 0.017960
    a = [True] * 10 + [False] * 25
    b = [False] * 10 + [True] * 25
    out = stats.mcnemar(a, b)
    assert out["test"] == "mcnemar-chi2-cc" and out["statistic"] == pytest.approx(5.6)
    assert out["p_value"] == pytest.approx(0.0179605, abs=1e-6) and out["significant"] is True
    # 24 discordant (5 vs 19) is still exact: 2 * sum_{k<=5} C(24, k) / 2^24 = 2 * 55455 / 16777216
    out = stats.mcnemar([True] * 5 + [False] * 19, [False] * 5 + [True] * 19)
    assert out["test"] == "mcnemar-exact" and out["p_value"] == pytest.approx(2 * 55455 / 2 ** 24)
    same = stats.mcnemar([True, False], [True, False])
    assert (same["b"], same["c"], same["p_value"], same["significant"]) == (0, 0, 1.0, False)


def test_mcnemar_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for b_count, c_count in ((1, 6), (5, 19), (0, 9), (10, 25), (40, 22)):
        a = [True] * b_count + [False] * c_count + [True, False]
        b = [False] * b_count + [True] * c_count + [True, False]
        out = stats.mcnemar(a, b)
        n = b_count + c_count
        if n < 25:
            expected = scipy_stats.binomtest(min(b_count, c_count), n, 0.5).pvalue
        else:
            expected = scipy_stats.chi2.sf((abs(b_count - c_count) - 1) ** 2 / n, 1)
        assert out["p_value"] == pytest.approx(expected, rel=1e-9)


def test_paired_bootstrap_matches_the_exact_multinomial_resampling():
    # 30 items: B - A is +1 on 9, 0 on 18, -1 on 3: diff = 6 / 30 = 0.2
    a = [0.0] * 9 + [1.0] * 9 + [0.0] * 9 + [1.0] * 3
    b = [1.0] * 9 + [1.0] * 9 + [0.0] * 9 + [0.0] * 3
    out = stats.paired_bootstrap(b, a)
    assert out["diff"] == pytest.approx(0.2) and out["items"] == 30
    # exact: (N+ - N-) / 30 with (N+, N0, N-) ~ Multinomial(30; 0.3, 0.6, 0.1)
    dist: dict[float, float] = {}
    for plus in range(31):
        for minus in range(31 - plus):
            p = (math.factorial(30) / (math.factorial(plus) * math.factorial(minus) * math.factorial(30 - plus - minus))
                 * 0.3 ** plus * 0.1 ** minus * 0.6 ** (30 - plus - minus))
            value = round((plus - minus) / 30, 12)
            dist[value] = dist.get(value, 0.0) + p
    assert_percentile_bounds(dist, *out["ci95"])
    tail = min(sum(p for v, p in dist.items() if v <= 0), sum(p for v, p in dist.items() if v >= 0))
    sd = 2 * math.sqrt(tail * (1 - tail) / 1000)  # Monte Carlo sd of 2 * (a tail share over 1000 resamples)
    assert out["p_value"] == pytest.approx(2 * tail, abs=3 * sd + 1e-3)
    assert out["significant"] is (out["p_value"] < 0.05)


def test_paired_bootstrap_of_identical_and_dominating_runs():
    same = stats.paired_bootstrap([0.2, 0.5, 0.9], [0.2, 0.5, 0.9])
    assert (same["diff"], same["ci95"], same["p_value"], same["significant"]) == (0.0, [0.0, 0.0], 1.0, False)
    better = stats.paired_bootstrap([1.0] * 8, [0.0] * 8)
    assert (better["diff"], better["ci95"], better["p_value"], better["significant"]) == (1.0, [1.0, 1.0], 0.0, True)


def test_length_baselines_by_hand():
    chosen = [10, 5, 7, 7, 3]
    rejected = [4, 9, 7, 2, 8]
    correct = [True, False, True, True, True]
    out = stats.length_baselines(chosen, rejected, correct)
    # longer wins on pairs 0 and 3 (pair 2 has equal lengths: wrong for both baselines): 2/5
    assert out["longer_wins"]["accuracy"] == pytest.approx(0.4)
    # shorter wins on pairs 1 and 4: 2/5; 0.4 + 0.4 = 1 - 1 tie / 5
    assert out["shorter_wins"]["accuracy"] == pytest.approx(0.4) and out["length_ties"] == 1
    # the rejected response is longer on pairs 1 (5 < 9) and 4 (3 < 8); the reward gets pair 4 only
    where = out["rm_where_longer_rejected"]
    assert (where["accuracy"], where["n"]) == (0.5, 2)
    # better baseline: a 2-2 tie goes to longer-wins; margin = 4/5 - 2/5
    assert out["best_baseline"] == "longer_wins"
    assert out["margin_over_best_baseline"]["diff"] == pytest.approx(0.4)
    assert stats.beats(out["margin_over_best_baseline"]) in ("yes", "n.s.")
    assert stats.beats({"ci95": [0.01, 0.2]}) == "yes" and stats.beats({"ci95": [-0.3, -0.1]}) == "no"
    assert stats.beats({"ci95": [-0.1, 0.2]}) == "n.s."


def test_preference_summary_carries_the_accuracy_interval():
    # margins 2, -1, 0, 0.5, 1 (a tie is wrong): 3 of 5 right
    s = stats.pair_summary([3.0, 0.0, 1.0, 1.5, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    assert s["accuracy"] == 0.6 and (s["ci_resamples"], s["ci_seed"]) == (1000, 0)
    assert_percentile_bounds({k / 5: p for k, p in binomial_pmf(5, 0.6).items()}, *s["ci95"])
