"""The harmonic blend: hand-computed values, negative rewards, the old REALM formula's failure, and the plugin
composed from real members (packaged MiniLM similarity + NIM reward from the fake server)."""

from __future__ import annotations

import math

import pytest

from support.fake_nim import FakeNim, fake_reward
from realm_cli.errors import RealmError
from realm_cli.rewards.options import spec_from_cli
from realm_cli.rewards.blend import harmonic_blend


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def realm_seed_formula(s, r, alpha):
    return 2 * (alpha * s * (1 - alpha) * r) / (alpha * s + (1 - alpha) * r)


def test_hand_computed_values():
    # s=0.6 -> s'=0.8; r=0 -> r'=0.5; alpha=0.5: 1/(0.5/0.8 + 0.5/0.5) = 1/1.625
    assert harmonic_blend(0.6, 0.0, alpha=0.5) == pytest.approx(1 / 1.625)
    # negative reward: s=0.2 -> 0.6; r=-2 -> sigmoid(-2)=0.1192029; alpha=0.3: 1/(0.3/0.6 + 0.7/0.1192029)
    assert harmonic_blend(0.2, -2.0, alpha=0.3) == pytest.approx(1 / (0.5 + 0.7 / 0.11920292202), rel=1e-9)
    # temperature: r=-18.125 (a typical Nemotron reward), tau=10 -> sigmoid(-1.8125)
    assert harmonic_blend(0.0, -18.125, alpha=0.5, tau=10) == pytest.approx(1 / (0.5 / 0.5 + 0.5 / sigmoid(-1.8125)))


def test_it_is_a_true_weighted_harmonic_mean():
    assert harmonic_blend(0.4, math.log(0.7 / 0.3), alpha=0.5) == pytest.approx(0.7)  # equal inputs 0.7 -> 0.7
    assert harmonic_blend(0.2, -3.0, alpha=1.0) == pytest.approx(0.6)  # all weight on similarity
    assert harmonic_blend(0.2, -3.0, alpha=0.0) == pytest.approx(sigmoid(-3.0))
    assert harmonic_blend(-1.0, 5.0) > 0 and math.isfinite(harmonic_blend(-1.0, -1000.0))  # floored, still finite


def test_monotone_and_bounded_for_negative_rewards_where_the_old_formula_fails():
    rewards = [-40.0, -18.125, -2.0, -0.5, 0.0, 0.5, 2.0, 10.0]
    blended = [harmonic_blend(0.5, r, alpha=0.5, tau=10) for r in rewards]
    assert blended == sorted(blended) and len(set(blended)) == len(blended)
    assert all(0 < b <= 1 for b in blended)
    # REALM's formula: a reward of -2 blends HIGHER than +2 (sign flip), and -0.5 divides by zero at s=0.5
    assert realm_seed_formula(0.5, -2.0, 0.5) > realm_seed_formula(0.5, 2.0, 0.5)
    with pytest.raises(ZeroDivisionError):
        realm_seed_formula(0.5, -0.5, 0.5)
    # and at alpha=0.5 it is half the harmonic mean even for positive inputs
    assert realm_seed_formula(0.6, 0.6, 0.5) == pytest.approx(0.3)


def test_nan_stays_nan():
    assert math.isnan(harmonic_blend(math.nan, 1.0)) and math.isnan(harmonic_blend(0.3, math.nan))


def test_options_are_validated():
    with pytest.raises(RealmError, match="alpha must be in"):
        spec_from_cli("blend", ["reward.alpha=2"])
    with pytest.raises(RealmError, match="reward.tau: expected a number"):
        spec_from_cli("blend", ["reward.tau=warm"])
    with pytest.raises(RealmError, match="only reward options"):
        spec_from_cli("blend", ["alpha=0.3"])


def test_blend_of_real_members(tmp_path):
    from realm_cli.rewards.build import build_reward
    from realm_cli.rewards.embedding import EmbeddingReward

    with FakeNim() as fake:
        spec = spec_from_cli("blend", ["reward.alpha=0.3", "reward.tau=10", "reward.reward.name=nim",
                                       f"reward.reward.base_url={fake.base_url}",
                                       f"reward.reward.cache_path={tmp_path / 'c.sqlite'}"])
        blend = build_reward(spec)
        prompts = [[{"role": "user", "content": "How do I boil an egg?"}]] * 2
        responses = ["Put it in boiling water for 8 minutes.", "Paris is in France."]
        batch = blend.score_batch(prompts, responses)
        blend.close()
    sims = EmbeddingReward().score(prompts, responses)
    rewards = [fake_reward(prompts[0] + [{"role": "assistant", "content": r}]) for r in responses]
    assert batch.extras["similarity"] == pytest.approx(sims, abs=1e-6)
    assert batch.extras["reward"] == rewards
    assert batch.scores == pytest.approx([harmonic_blend(s, r, 0.3, 10) for s, r in zip(sims, rewards)], abs=1e-6)


def test_default_reward_member_missing_is_explained(tmp_path, monkeypatch):
    from realm_cli.rewards.build import build_reward

    monkeypatch.setenv("REALM_DEFAULT_RM", str(tmp_path / "no-such-rm"))
    with pytest.raises(RealmError, match="train-rm --recipe cpu-minilm"):
        build_reward(spec_from_cli("blend", []))


def test_default_members_are_minilm_and_the_default_rm(tiny_bert_dir, monkeypatch):
    from realm_cli.rewards.build import build_reward

    monkeypatch.setenv("REALM_DEFAULT_RM", tiny_bert_dir)  # stands in for runs/cpu-minilm
    blend = build_reward(spec_from_cli("blend", []))
    prompts = [[{"role": "user", "content": "Any tips for sleeping better?"}]] * 2
    responses = ["Keep a regular bedtime and a dark room.", "Bananas are yellow."]
    batch = blend.score_batch(prompts, responses)
    blend.close()
    bt = build_reward(spec_from_cli("bt", [f"reward.model={tiny_bert_dir}"]))
    assert batch.extras["reward"] == pytest.approx(bt.score(prompts, responses), abs=1e-3)
    assert batch.scores == pytest.approx([harmonic_blend(s, r) for s, r in zip(batch.extras["similarity"],
                                                                               batch.extras["reward"])])
