"""Shared fixtures: the real data in ../shared/data (skipped cleanly when absent), tiny random models, a fresh
plugin state per test that needs one."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from support.shared import REPO, SHARED_DATA, shared_file  # noqa: F401 - used by fixtures below


def pytest_collection_modifyitems(items):
    """Real multi-process runs go to one pytest-xdist worker, one after another (`make test` uses --dist loadgroup):
    two of them at once would put four processes on two cores and could meet on a launcher port."""
    for item in items:
        if item.get_closest_marker("distributed"):
            item.add_marker(pytest.mark.xdist_group("distributed"))


@pytest.fixture
def fresh_plugins():
    """A plugin state rebuilt for this test and dropped afterwards (tests may register fakes through it)."""
    from realm_cli import plugins

    plugins.reset()
    yield plugins
    plugins.reset()


@pytest.fixture(scope="session")
def minilm_tokenizer_dir() -> str:
    from realm_cli import models

    return models.local_path("minilm-l6")


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """The packaged SmolLM2-135M-Instruct as a plain HF directory (converted from GGUF once per machine)."""
    from realm_cli import models

    return models.local_path("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_tokenizer_dir) -> str:
    """A 2-layer, 32-wide random BERT with the real MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(minilm_tokenizer_dir)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_dir) -> str:
    """A 2-layer, 32-wide random Llama (causal LM) with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=1024,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, smollm2_dir) -> str:
    """A 2-layer random GPT-2 whose tokenizer has no pad token (the GPT-2 situation)."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-gpt2")
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tok.pad_token = None
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=1024,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)
