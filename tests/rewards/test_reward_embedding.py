"""The embedding reward on the packaged all-MiniLM-L6-v2 against plain sentence-transformers."""

from __future__ import annotations

import pytest

from realm_cli.errors import RealmError
from realm_cli.rewards.options import spec_from_cli


def test_matches_plain_sentence_transformers_cosine():
    from sentence_transformers import SentenceTransformer, util

    from realm_cli import models
    from realm_cli.rewards.build import build_reward

    reward = build_reward(spec_from_cli("embedding", ["reward.batch_size=2"]))
    prompts = ["How do I boil an egg?", "What is the capital of France?", "How do I boil an egg?"]
    responses = ["Boil it in water for eight minutes.", "Paris.", "The capital of France is Paris."]
    conversation = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
                    {"role": "user", "content": prompts[0]}]
    scores = reward.score([[{"role": "user", "content": p}] for p in prompts[:2]] + [conversation], responses)
    plain = SentenceTransformer(models.local_path("minilm-l6"), device="cpu")
    expected = [float(util.cos_sim(plain.encode(p), plain.encode(r))) for p, r in zip(prompts, responses)]
    assert scores == pytest.approx(expected, abs=1e-5)  # a conversation embeds its last user turn
    assert scores[0] > scores[2]  # the on-topic answer is the more similar one


def test_bilingual_alias_resolves_to_the_hub_and_fails_clearly_offline(monkeypatch):
    from realm_cli import models
    from realm_cli.rewards.build import build_reward

    assert models.resolve("bilingual-embedding-large").location == "Lajavaness/bilingual-embedding-large"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RealmError, match="bilingual-embedding-large"):
        build_reward(spec_from_cli("embedding", ["reward.model=bilingual-embedding-large"]))
