"""Templated text back into messages, for the templates RL stacks send: each text is rendered by a real tokenizer's
``apply_chat_template`` and decoded the way OpenRLHF's trainer decodes a sample (special tokens kept)."""

from __future__ import annotations

import pytest

from realm_cli.errors import RealmError
from realm_cli.rewards.templates import detect, parse, split_sample
from support.templates import GEMMA, LLAMA3, SPECIALS

EOS = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "gemma": "<end_of_turn>"}

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Red."}, {"role": "user", "content": "Another one,\nplease?"}]
RESPONSE = "Blue, like the sea.\n\nOr green."


@pytest.fixture(scope="module")
def tokenizers(smollm2_dir):
    """SmolLM2's own ChatML tokenizer, and copies carrying the Llama-3 and Gemma templates and special tokens."""
    from transformers import AutoTokenizer

    out = {"chatml": AutoTokenizer.from_pretrained(smollm2_dir)}
    for name, template in (("llama3", LLAMA3), ("gemma", GEMMA)):
        tok = AutoTokenizer.from_pretrained(smollm2_dir)
        tok.add_special_tokens({"additional_special_tokens": SPECIALS[name]})
        tok.chat_template = template
        out[name] = tok
    return out


def openrlhf_sample(tok, name: str, prompt: list[dict], response: str) -> tuple[str, str]:
    """(query, prompt) as OpenRLHF's trainer builds them: the templated prompt with the generation header, then the
    sampled response tokens and the end-of-turn token, decoded with special tokens kept."""
    messages = [m for m in prompt if name != "gemma" or m["role"] != "system"]  # Gemma has no system role
    prompt_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok(prompt_text, add_special_tokens=False)["input_ids"] + tok(response, add_special_tokens=False)["input_ids"]
    ids += tok(EOS[name], add_special_tokens=False)["input_ids"]
    return tok.decode(ids, skip_special_tokens=False), prompt_text


@pytest.mark.parametrize("name", ["chatml", "llama3", "gemma"])
def test_an_openrlhf_sample_parses_back_into_its_conversation(tokenizers, name):
    query, prompt = openrlhf_sample(tokenizers[name], name, CONVERSATION, RESPONSE)
    expected = [m for m in CONVERSATION if name != "gemma" or m["role"] != "system"]
    assert detect(query) == name
    for given_prompt in (prompt, None):  # with OpenRLHF's "prompts", and from the query alone
        messages, response = split_sample(query, given_prompt)
        assert response == RESPONSE, (name, given_prompt is None)
        assert [(m["role"], m["content"].strip()) for m in messages] == [(m["role"], m["content"].strip())
                                                                        for m in expected]
    assert split_sample(query, None, name) == split_sample(query, None)  # naming the template gives the same


def test_left_padding_and_a_missing_end_token_are_tolerated(tokenizers):
    tok = tokenizers["chatml"]
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    padded = tok.pad_token * 3 + text + "hello there" if tok.pad_token else text + "hello there"
    messages, response = split_sample(padded)  # SmolLM2's template adds its default system turn
    assert messages[-1] == {"role": "user", "content": "hi"} and response == "hello there"


def test_hh_transcripts_and_plain_prompts():
    hh = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: 6."
    assert detect(hh) == "hh"
    assert split_sample(hh) == ([{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."},
                                 {"role": "user", "content": "And 3+3?"}], "6.")
    assert split_sample("Hi there! Hello.", "Hi there!") == ([{"role": "user", "content": "Hi there!"}], " Hello.")
    with pytest.raises(RealmError, match="assistant turn"):
        split_sample("just some text")
    with pytest.raises(RealmError, match="does not start with its prompt"):
        split_sample("abc", "xyz")
    assert parse("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n") == [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]
