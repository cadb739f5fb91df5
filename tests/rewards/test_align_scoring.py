"""Reward accounting for alignment: unscorable samples are NaN and counted, never 0; win-rates by hand."""

from __future__ import annotations

import math

import pytest
from support.align_toys import BrokenReward, FlakyReward, LetterReward

from realm_cli.align.report import per_prompt
from realm_cli.evaluate.stats import win_rate
from realm_cli.rewards.safe import score
from realm_cli.errors import RealmError
from realm_cli.contracts import Reward, ScoreBatch

P = [{"role": "user", "content": "hi"}]


def test_a_sample_that_raises_or_returns_nan_is_excluded_and_counted_the_rest_scored():
    responses = ["aaaa", "qa", "ab", "za", "bbbb"]
    out = score(FlakyReward(), [P] * len(responses), responses, batch_size=4)
    assert out.values[0] == 1.0 and out.values[2] == 0.5 and out.values[4] == 0.0
    assert math.isnan(out.values[1]) and math.isnan(out.values[3])  # raised / NaN: never 0.0
    assert out.failed == 2
    assert out.ok == [True, False, True, False, True]
    assert any("upstream reward server hiccup" in e for e in out.errors)


def test_a_reward_that_scores_nothing_is_an_error_not_a_batch_of_zeros():
    with pytest.raises(RealmError, match="could not score any of 3 responses.*reward service is down"):
        score(BrokenReward(), [P] * 3, ["a", "b", "c"], what="reward 'broken'")


def test_a_reward_returning_the_wrong_number_of_scores_is_an_error():
    class Short(Reward):
        def score_batch(self, prompts, responses):
            return ScoreBatch([0.0])

    with pytest.raises(RealmError, match="2 responses"):
        score(Short(), [P, P], ["a", "b"])


def test_scores_come_back_in_order_across_batches():
    responses = ["a", "b", "aa", "ba", "aab"]
    out = score(LetterReward(), [P] * 5, responses, batch_size=2)
    assert out.values == pytest.approx([1.0, 0.0, 1.0, 0.5, 2 / 3])
    assert out.failed == 0


def test_win_rate_counts_ties_as_half_and_leaves_out_unscored_prompts():
    aligned = [1.0, 0.5, 0.2, math.nan, 0.3]
    base = [0.5, 0.5, 0.4, 0.1, math.nan]
    out = win_rate(aligned, base)
    assert (out["wins"], out["ties"], out["losses"], out["unscored"]) == (1, 1, 1, 2)
    assert out["win_rate"] == pytest.approx(0.5)


def test_per_prompt_means_ignore_nan_samples():
    assert per_prompt([1.0, math.nan, 2.0, 4.0], [0, 0, 1, 1], 2) == [1.0, 3.0]


def test_win_rate_carries_a_bootstrap_interval_over_the_prompts():
    out = win_rate([2.0, 3.0, 4.0], [1.0, 1.0, 1.0])
    assert out["ci95"] == [1.0, 1.0] and (out["ci_resamples"], out["ci_seed"]) == (1000, 0)
    assert win_rate([1.0] * 5, [1.0] * 5)["ci95"] == [0.5, 0.5]  # every prompt a tie: 0.5 in every resample
    # 12 wins, 8 losses: the resampled win-rate is Binomial(20, 0.6) / 20 exactly; the 95% percentile interval
    # leaves about 2.5% of that distribution on each side (atoms and 1000 resamples allowed for)
    out = win_rate([1.0] * 12 + [0.0] * 8, [0.5] * 20)
    low, high = out["ci95"]
    pmf = {k / 20: math.comb(20, k) * 0.6 ** k * 0.4 ** (20 - k) for k in range(21)}
    assert sum(p for v, p in pmf.items() if v < low - 1e-12) <= 0.045
    assert sum(p for v, p in pmf.items() if v <= low + 1e-12) >= 0.01
    assert sum(p for v, p in pmf.items() if v > high + 1e-12) <= 0.045
    assert sum(p for v, p in pmf.items() if v >= high - 1e-12) >= 0.01


def test_align_summary_win_rates_carry_their_interval():
    from realm_cli.align.report import summarise

    base = {"prompt_index": [0, 1], "scores": {"r": [0.1, 0.2]}, "lengths": [3, 4]}
    aligned = {"prompt_index": [0, 1], "scores": {"r": [0.5, 0.6]}, "lengths": [3, 4]}
    out = summarise(base, aligned, ["r"], 0.1, 2)["r"]
    assert out["win_rate"] == 1.0 and out["ci95"] == [1.0, 1.0] and out["ci_resamples"] == 1000
