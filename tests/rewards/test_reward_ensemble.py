"""The ensemble: per-prompt z-scores by hand, weighted means, and real members (MiniLM + fake-server NIM)."""

from __future__ import annotations

import math

import pytest

from support.fake_nim import FakeNim, fake_reward
from realm_cli.errors import RealmError
from realm_cli.rewards.options import spec_from_cli
from realm_cli.rewards.ensemble import zscore_within_prompts

A = [{"role": "user", "content": "a"}]
B = [{"role": "user", "content": "b"}]


def test_zscore_within_prompts_by_hand():
    z = zscore_within_prompts([A, B, A, A, B], [1.0, -20.0, 2.0, 3.0, -10.0])
    s = math.sqrt(2 / 3)  # population std of 1, 2, 3
    assert z == pytest.approx([-1 / s, -1.0, 0.0, 1 / s, 1.0])


def test_zscore_edge_cases():
    assert zscore_within_prompts([A, B, B], [5.0, 2.0, 2.0]) == [0.0, 0.0, 0.0]  # single / all-equal
    z = zscore_within_prompts([A, A, A], [1.0, math.nan, 3.0])
    assert z[0] == -1.0 and math.isnan(z[1]) and z[2] == 1.0


def test_config_checks():
    with pytest.raises(RealmError, match="at least one reward"):
        spec_from_cli("ensemble", [])
    with pytest.raises(RealmError, match="2 weights for 1 members"):
        spec_from_cli("ensemble", ["reward.members=[{name: embedding}]", "reward.weights=[1, 2]"])
    with pytest.raises(RealmError, match="unknown key"):
        spec_from_cli("ensemble", ["reward.members=[{name: embedding, colour: red}]"])


def test_weighted_ensemble_of_real_members(tmp_path):
    from realm_cli.rewards.build import build_reward
    from realm_cli.rewards.embedding import EmbeddingReward

    prompts = [A, A, A, B, B]
    responses = ["alpha", "a is the first letter", "zebra", "b", "bee"]
    with FakeNim() as fake:
        members = f"[{{name: embedding}}, {{name: nim, base_url: '{fake.base_url}', cache_path: '{tmp_path}/c.db'}}]"
        for normalize in ("none", "prompt"):
            ensemble = build_reward(spec_from_cli("ensemble", [f"reward.members={members}", "reward.weights=[3, 1]",
                                                               f"reward.normalize={normalize}"]))
            batch = ensemble.score_batch(prompts, responses)
            ensemble.close()
            sims = EmbeddingReward().score(prompts, responses)
            nims = [fake_reward(p + [{"role": "assistant", "content": r}]) for p, r in zip(prompts, responses)]
            if normalize == "prompt":
                sims, nims = zscore_within_prompts(prompts, sims), zscore_within_prompts(prompts, nims)
            assert batch.scores == pytest.approx([(3 * s + n) / 4 for s, n in zip(sims, nims)], abs=1e-6)
            assert batch.extras["1:nim"] == pytest.approx(nims)
