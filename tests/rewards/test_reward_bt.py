"""The RM input format (shared by training and the bt reward), fitting to max_length, and batched scoring."""

from __future__ import annotations

import math

import pytest

from realm_cli.rewards import rm as rmlib
from realm_cli.errors import RealmError


@pytest.fixture(scope="module")
def bert_tok(minilm_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_tokenizer_dir)


@pytest.fixture(scope="module")
def chat_tok(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def user(text):
    return {"role": "user", "content": text}


def test_pair_format_is_the_tokenizers_own_sentence_pair(bert_tok):
    fmt = rmlib.RMFormat(bert_tok, 128)
    assert fmt.format == "pair"
    ids, cut = fmt.encode([user("How do I boil an egg?")], "Put it in boiling water for eight minutes.")
    assert not cut
    assert ids == bert_tok("How do I boil an egg?", "Put it in boiling water for eight minutes.")["input_ids"]
    assert fmt.count([user("How do I boil an egg?")], "Put it in boiling water for eight minutes.") == len(ids)
    fitted = fmt.fit([user("How do I boil an egg?")], "Put it in boiling water for eight minutes.")
    assert fitted.ids == ids and not fitted.cut and fitted.fits


def test_segment_ids_are_the_tokenizers_own(bert_tok, tiny_bert_dir):
    """BERT reads a segment id per token; realm joins fitted ids itself, so its hook must add exactly the segment ids
    (and padding) of a plain tokenizer(prompt, response) call, and leave explicitly given ones alone."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    fmt = rmlib.RMFormat(bert_tok, 128)
    assert rmlib.attach_segment_ids(model, fmt)
    prompts = ["How do I boil an egg?", "Name a colour.", "User: hi\n\nAssistant: hello\n\nUser: and tea?"]
    responses = ["Eight minutes in boiling water.", "Blue, like a clear sky on a long summer afternoon.", "Yes."]
    seen = {}
    model.bert.embeddings.register_forward_hook(lambda m, args, kwargs, out: seen.update(kwargs), with_kwargs=True)
    enc = bert_tok(prompts, responses, return_tensors="pt", padding=True)
    with torch.no_grad():
        ours = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.view(-1)
        assert torch.equal(seen["token_type_ids"], enc["token_type_ids"]) and enc["token_type_ids"].sum() > 0
        plain = model(**enc).logits.view(-1)
        zeros = model(**{**enc, "token_type_ids": torch.zeros_like(enc["token_type_ids"])}).logits.view(-1)
    assert torch.equal(ours, plain) and not torch.allclose(ours, zeros)


def test_rms_trained_without_segment_ids_are_scored_without_them(tmp_path, bert_tok, tiny_bert_dir):
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    enc = bert_tok(["q?"], ["an answer"], return_tensors="pt")
    with torch.no_grad():
        with_types = model(**enc).logits.item()
        without = model(**{**enc, "token_type_ids": torch.zeros_like(enc["token_type_ids"])}).logits.item()
    shutil.copytree(tiny_bert_dir, tmp_path / "rm")
    rmlib.RMInfo(format="pair", max_length=64).save(tmp_path / "rm")  # a realm RM from before segment ids
    old = rmlib.score(rmlib.load(str(tmp_path / "rm")), [[user("q?")]], ["an answer"], precision="fp32")
    (tmp_path / "rm" / rmlib.RM_FILE).unlink()  # a plain hub RM: scored the way its tokenizer encodes pairs
    plain = rmlib.score(rmlib.load(str(tmp_path / "rm")), [[user("q?")]], ["an answer"], precision="fp32")
    assert old == pytest.approx([without], abs=1e-6) and plain == pytest.approx([with_types], abs=1e-6)
    assert with_types != pytest.approx(without, abs=1e-6)


def test_pair_fitting_cuts_oldest_context_then_response_tail(bert_tok):
    """The one policy (realm_cli.data.length) on the sentence-pair format: old turns go whole (they used to be cut
    token by token from the head of the rendered prompt, leaving len(ids) == 32), then the final turn's head down to
    its half, then the response tail."""
    fmt = rmlib.RMFormat(bert_tok, 32)
    prompt = [user("alpha " * 40), {"role": "assistant", "content": "ok"}, user("final question here")]
    ids, cut = fmt.encode(prompt, "short answer")
    text = bert_tok.decode(ids)
    assert cut and len(ids) <= 32 and "alpha" not in text and "ok" not in text.split()
    assert "final question here" in text and "short answer" in text  # newest context and the response survive
    assert ids == bert_tok("final question here", "short answer")["input_ids"]
    assert fmt.fit(prompt, "short answer").cut.turns == 2
    ids, cut = fmt.encode([user("what is this")], "word " * 100)
    text = bert_tok.decode(ids)
    assert cut and len(ids) == 32 and "what is this" in text  # the prompt keeps its share; the response tail goes
    fitted = fmt.fit([user("the question " * 40)], "word " * 100)
    assert len(fitted.ids) == 32 and fitted.prompt[0]["content"].endswith("the question ")
    assert len(bert_tok(fitted.prompt[0]["content"], add_special_tokens=False)["input_ids"]) >= (32 - 3) // 2


def test_chat_fitting_drops_oldest_turns_and_keeps_the_template_ending(chat_tok):
    fmt = rmlib.RMFormat(chat_tok, 64)
    assert fmt.format == "chat_template"
    prompt = [user("old " * 50), {"role": "assistant", "content": "old reply"}, user("newest question")]
    ids, cut = fmt.encode(prompt, "the answer")
    text = chat_tok.decode(ids)
    assert cut and len(ids) <= 64
    assert "old reply" not in text and "newest question" in text and "the answer" in text
    ids, cut = fmt.encode([user("q")], "long " * 200)
    assert cut and len(ids) <= 64 and chat_tok.decode(ids).endswith("<|im_end|>\n")
    full = [user("hi")]
    assert fmt.encode(full, "hello")[0] == chat_tok(chat_tok.apply_chat_template(
        full + [{"role": "assistant", "content": "hello"}], tokenize=False), add_special_tokens=False)["input_ids"]


@pytest.fixture
def tiny_gpt2_rm(tmp_path, tiny_gpt2_dir):
    """The tiny GPT-2 with a (random but saved) single-logit score head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2_dir, num_labels=1)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_gpt2_dir).save_pretrained(tmp_path)
    return str(tmp_path)


def test_a_base_model_without_a_trained_head_is_refused(tiny_gpt2_dir):
    with pytest.raises(RealmError, match="no trained reward head"):
        rmlib.load(tiny_gpt2_dir)


def test_scores_do_not_depend_on_batching_or_padding(tiny_gpt2_rm):
    """GPT-2 style: EOS reused as pad, right padding; a sequence scores the same alone or in a padded batch."""
    rm = rmlib.load(tiny_gpt2_rm)
    assert rm.tokenizer.pad_token == rm.tokenizer.eos_token
    prompts = [[user("a")], [user("a much longer question with many more words in it")], [user("mid size")]]
    responses = ["x", "a long response " * 5, "ok then"]
    batched = rmlib.score(rm, prompts, responses, batch_size=8, precision="fp32")
    alone = [rmlib.score(rm, [p], [r], batch_size=1, precision="fp32")[0] for p, r in zip(prompts, responses)]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert all(math.isfinite(s) for s in batched)


def test_bt_reward_loads_an_external_rm_directory(tiny_bert_dir):
    """A directory without realm_rm.json (e.g. a hub RM) is scored with the tokenizer's natural format."""
    from realm_plugins.rewards.bt import BTReward

    reward = BTReward(BTReward.Config(model=tiny_bert_dir, batch_size=2))
    batch = reward.score_batch([[user("q1")], [user("q2")], [user("q3")]], ["a", "bb", "ccc"])
    assert len(batch.scores) == 3 and all(math.isfinite(s) for s in batch.scores)
    with pytest.raises(RealmError, match="normalize=true needs"):
        BTReward(BTReward.Config(model=tiny_bert_dir, normalize=True)).score([[user("q")]], ["a"])


def test_a_multi_label_classifier_is_not_a_reward_model(tmp_path, minilm_tokenizer_dir):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, num_labels=3)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(minilm_tokenizer_dir).save_pretrained(tmp_path)
    with pytest.raises(RealmError, match="3 output labels"):
        rmlib.load(str(tmp_path))


@pytest.mark.parametrize("precision,bf16_cpu,dtype", [("auto", True, "bfloat16"), ("auto", False, "float32"),
                                                      ("bf16", False, "bfloat16"), ("fp32", True, "float32")])
def test_bt_reward_scores_with_bf16_weights_where_it_scores_in_bf16(tiny_gpt2_rm, monkeypatch, precision,
                                                                    bf16_cpu, dtype):
    """On a CPU that scores in bf16 the RM is loaded in bf16 (no fp32 norms and casts around each matmul); its
    scores agree with the fp32 model's to bf16 rounding."""
    import torch

    from realm_cli import models
    from realm_plugins.rewards.bt import BTReward

    monkeypatch.setattr(models, "bf16_supported", lambda device="cpu": bf16_cpu)
    reward = BTReward(BTReward.Config(model=tiny_gpt2_rm, precision=precision, device="cpu"))
    prompts = [[user("a")], [user("a much longer question with many more words in it")], [user("mid size")]]
    responses = ["x", "a long response " * 5, "ok then"]
    scores = reward.score(prompts, responses)
    assert {p.dtype for p in reward.rm.model.parameters()} == {getattr(torch, dtype)}
    exact = BTReward(BTReward.Config(model=tiny_gpt2_rm, precision="fp32", device="cpu")).score(prompts, responses)
    assert scores == pytest.approx(exact, abs=0.05 * max(map(abs, exact)))
