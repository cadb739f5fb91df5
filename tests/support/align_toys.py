"""Toys for the align tests: a character-level tiny chat model (so a random policy samples every symbol often and a
toy reward is learnable in a few steps) and small rewards registered through a fresh plugin state."""

from __future__ import annotations

import math
import string

import pytest

from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Reward, ScoreBatch

CHARS = string.ascii_lowercase + " .!?"
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def build_char_llama(out_dir, *, chat_template: bool = True, seed: int = 0) -> str:
    """A 2-layer, 32-wide random Llama over ~35 symbols with a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<eos>", "<|user|>", "<|assistant|>", "<|system|>"]
    vocab = {tok: i for i, tok in enumerate(specials + list(CHARS))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>",
                                  additional_special_tokens=specials[3:])
    if chat_template:
        tok.chat_template = TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=None, eos_token_id=2, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return str(out_dir)


class LetterReward(Reward):
    """Fraction of the response's letters that are 'a': a toy reward a random character policy can learn."""

    def score_batch(self, prompts, responses):
        return ScoreBatch([r.count("a") / max(1, len(r.replace(" ", ""))) for r in responses])


class FlakyReward(LetterReward):
    """Raises for responses containing 'q' and returns NaN for those containing 'z' (the rest as LetterReward)."""

    def score_batch(self, prompts, responses):
        if any("q" in r for r in responses):
            raise ConnectionError("upstream reward server hiccup")
        scores = super().score_batch(prompts, responses).scores
        return ScoreBatch([math.nan if "z" in r else s for r, s in zip(responses, scores)])


class BrokenReward(Reward):
    def score_batch(self, prompts, responses):
        raise RuntimeError("reward service is down")


class ToyRewards:
    @staticmethod
    @hookimpl
    def register_rewards(register):
        register("letter-a", LetterReward, description="toy: fraction of letters that are 'a'")
        register("flaky", FlakyReward, description="toy: raises on 'q', NaN on 'z'")
        register("broken", BrokenReward, description="toy: always raises")


def install(fresh_plugins):
    fresh_plugins.reset(fresh_plugins.build(extra_plugins=[ToyRewards]))


@pytest.fixture(scope="session")
def char_llama_dir(tmp_path_factory) -> str:
    return build_char_llama(tmp_path_factory.mktemp("char-llama"))


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and far faster than on two on a CPU shared with other jobs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
