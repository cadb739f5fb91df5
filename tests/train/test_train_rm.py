"""realm train-rm with the bt trainer on tiny random models: outputs, reload fidelity, LoRA head, merge, errors."""

from __future__ import annotations

import json

import pytest
from support.rm_helpers import write_pairs, write_recipe

from realm_cli.recipes import runner
from realm_cli.errors import RealmError


def _train(tmp_path, model, name="r", **kw):
    data = write_pairs(tmp_path / "pairs.jsonl", n=kw.pop("n", 48), margin=kw.pop("margin", False),
                       long_every=kw.pop("long_every", 0))
    out = tmp_path / f"out-{name}"
    recipe = write_recipe(tmp_path / f"{name}.yaml", model, data, out, **kw)
    return runner.run("train-rm", str(recipe), []), out


def _plain_scores(out, prompts, responses):
    """Score with nothing but transformers, the way a user of the output directory would."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        enc = tok(prompts, responses, return_tensors="pt", padding=True)  # with BERT's segment ids, as users call it
        return model(**enc).logits.view(-1).tolist()


def test_full_bert_run_writes_a_plain_hf_reward_model(tmp_path, tiny_bert_dir):
    metrics, out = _train(tmp_path, tiny_bert_dir, long_every=5)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "realm_rm.json", "recipe.yaml",
                 "metrics.json", "training.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["train"]["pairs"] == 36 and saved["data"]["splits"]["train"]["dropped"] == 0
    assert saved["data"]["splits"]["train"]["truncated"] > 0  # the long prompts were fitted, not dropped
    assert saved["train"]["reload_max_abs_diff"] < 1e-5
    held = saved["validation"]["held-out"]
    assert held["pairs"] == 12 and held["accuracy"] >= 0.9  # the synthetic preference is easy to learn
    info = json.loads((out / "realm_rm.json").read_text())
    assert info["format"] == "pair" and info["max_length"] == 64 and info["reward_std"] > 0
    assert info["segment_ids"] is True  # trained with [CLS] prompt [SEP] = segment 0, response [SEP] = segment 1

    from realm_plugins.rewards.bt import BTReward

    prompts = ["Tell me something about tea, please.", "Tell me something about jazz, please."]
    responses = ["Happy to help: tea are interesting, here is a clear answer about tea.", "Whatever."]
    plain = _plain_scores(str(out), prompts, responses)
    reward = BTReward(BTReward.Config(model=str(out), precision="fp32"))
    ours = reward.score([[{"role": "user", "content": p}] for p in prompts], responses)
    assert ours == pytest.approx(plain, abs=1e-5)  # the bt reward formats exactly as a plain pair encoding
    assert ours[0] > ours[1]


def test_margin_and_center_rewards_are_used(tmp_path, tiny_bert_dir):
    metrics, _ = _train(tmp_path, tiny_bert_dir, margin=True,
                        trainer={"center_rewards_coefficient": 0.01, "max_steps": 3, "eval_steps": 2})
    assert metrics["train"]["steps"] == 3
    evals = [h for h in metrics["eval_log"] if "eval_held-out_accuracy" in h]
    assert evals[0]["step"] == 2  # mid-run evaluation on the held-out set
    assert 0 <= evals[0]["eval_held-out_accuracy"] <= 1
    assert metrics["validation"]["held-out"]["pairs"] == 12


def test_lora_gpt2_pads_with_eos_saves_the_head_and_merges(tmp_path, tiny_gpt2_dir):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForSequenceClassification

    from realm_cli.rewards import rm as reward_model

    lora = "  lora: {r: 4, alpha: 8, dropout: 0.0, target_modules: [c_attn, c_proj]}"
    metrics, out = _train(tmp_path, tiny_gpt2_dir, lora=lora, trainer={"merge": True, "precision": "fp32"})
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert any("score" in k for k in f.keys())  # trl#1379: the head travels with the adapter
    assert metrics["train"]["reload_max_abs_diff"] < 1e-5
    assert metrics["train"]["format"] == "chat_template"

    rm = reward_model.load(str(out))
    assert rm.tokenizer.pad_token == rm.tokenizer.eos_token
    prompts = [[{"role": "user", "content": "Tell me something about maps, please."}]] * 2
    responses = ["Happy to help: maps are interesting, here is a clear answer about maps.", "No."]
    adapter_scores = reward_model.score(rm, prompts, responses, precision="fp32")

    torch.manual_seed(123)  # a head re-initialised at load would differ under another seed
    merged = reward_model.load(str(out / "merged"))
    assert not (out / "merged" / "adapter_config.json").exists()
    assert reward_model.score(merged, prompts, responses, precision="fp32") == pytest.approx(adapter_scores,
                                                                                          abs=1e-5)
    plain = AutoModelForSequenceClassification.from_pretrained(str(out / "merged"))
    assert plain.config.pad_token_id == rm.tokenizer.pad_token_id


def test_lora_bert_keeps_segment_ids_through_merge(tmp_path, tiny_bert_dir):
    """PEFT wraps the model after realm hooks segment ids onto it: the adapter run, its reload and the merged plain
    model must all score like a plain tokenizer(prompt, response) call."""
    lora = "  lora: {r: 4, alpha: 8, dropout: 0.0, target_modules: [query, value]}"
    metrics, out = _train(tmp_path, tiny_bert_dir, lora=lora, trainer={"merge": True, "precision": "fp32"})
    assert metrics["train"]["reload_max_abs_diff"] < 1e-5
    assert json.loads((out / "merged" / "realm_rm.json").read_text())["segment_ids"] is True

    from realm_plugins.rewards.bt import BTReward

    prompts = ["Tell me something about tea, please.", "Tell me something about jazz, please."]
    responses = ["Happy to help: tea are interesting, here is a clear answer about tea.", "Whatever."]
    ours = BTReward(BTReward.Config(model=str(out), precision="fp32")).score(
        [[{"role": "user", "content": p}] for p in prompts], responses)
    assert ours == pytest.approx(_plain_scores(str(out / "merged"), prompts, responses), abs=1e-5)


def test_loading_a_base_for_a_fresh_head_prints_no_alarm(tmp_path, tiny_bert_dir):
    """Training starts from a headless base and a LoRA RM's base gets its head from the adapter: transformers'
    "classifier.weight MISSING / newly initialized" report would only alarm, so those loads are quiet."""
    import logging

    from transformers import AutoModel, AutoModelForSequenceClassification

    from realm_cli.rewards import rm as reward_model

    AutoModel.from_pretrained(tiny_bert_dir).save_pretrained(tmp_path / "base")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    try:
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=1)
        assert any("MISSING" in m for m in seen)  # what a plain load reports
        seen.clear()
        with reward_model.fresh_head_expected():
            AutoModelForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=1)
        assert not any("MISSING" in m for m in seen)
    finally:
        logging.getLogger("transformers").removeHandler(handler)


def test_llama_chat_template_full_run_and_bt_reward_normalize(tmp_path, tiny_llama_dir):
    from realm_plugins.rewards.bt import BTReward

    metrics, out = _train(tmp_path, tiny_llama_dir, trainer={"max_steps": 4}, max_length=96)
    assert metrics["train"]["format"] == "chat_template"
    info = json.loads((out / "realm_rm.json").read_text())
    raw = BTReward(BTReward.Config(model=str(out), precision="fp32"))
    norm = BTReward(BTReward.Config(model=str(out), precision="fp32", normalize=True))
    prompts = [[{"role": "user", "content": "hi"}]] * 3
    responses = ["a", "Happy to help: bread are interesting.", "No."]
    r, n = raw.score(prompts, responses), norm.score(prompts, responses)
    assert n == pytest.approx([(x - info["reward_mean"]) / info["reward_std"] for x in r], abs=1e-5)


def test_resume_without_checkpoint_is_one_clear_error(tmp_path, tiny_bert_dir):
    data = write_pairs(tmp_path / "p.jsonl")
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, tmp_path / "out")
    with pytest.raises(RealmError, match="no complete checkpoint"):
        runner.run("train-rm", str(recipe), [], resume=True)


@pytest.mark.parametrize("model_kind, message", [
    ("missing", "no such local path"),
    ("no-tokenizer", "no tokenizer files"),
    ("no-pad", "neither a pad token nor an EOS token"),
])
def test_bad_models_fail_before_work(tmp_path, tiny_bert_dir, tiny_gpt2_dir, model_kind, message):
    import shutil

    if model_kind == "missing":
        model = str(tmp_path / "no-such-model")
    elif model_kind == "no-tokenizer":
        model = str(tmp_path / "weights-only")
        shutil.copytree(tiny_bert_dir, model, ignore=shutil.ignore_patterns("tokenizer*", "vocab*", "special*"))
    else:
        from transformers import AutoTokenizer

        model = str(tmp_path / "gpt2-no-eos")
        shutil.copytree(tiny_gpt2_dir, model)
        tok = AutoTokenizer.from_pretrained(model)
        tok.pad_token = None
        tok.eos_token = None
        tok.save_pretrained(model)
    data = write_pairs(tmp_path / "p.jsonl")
    recipe = write_recipe(tmp_path / "r.yaml", model, data, tmp_path / "out")
    with pytest.raises(RealmError, match=message):
        runner.run("train-rm", str(recipe), [])
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_fp16_and_gpu_recipes_on_cpu_fail_before_loading(tmp_path, tiny_bert_dir):
    data = write_pairs(tmp_path / "p.jsonl")
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, tmp_path / "out", trainer={"precision": "fp16"})
    with pytest.raises(RealmError, match="fp16 needs a CUDA GPU"):
        runner.run("train-rm", str(recipe), [])
    with pytest.raises(RealmError, match="targets a GPU"):
        runner.run("train-rm", "gpt2-lora-6gb", [f"output_dir={tmp_path}/gpu"])
    with pytest.raises(RealmError, match="needs CUDA GPUs"):
        runner.run("train-rm", "gemma2b-zero3", [])


def test_a_mixed_validation_set_is_also_reported_per_source(tiny_bert_dir):
    from realm_cli.rewards import rm as rmlib
    from realm_cli.contracts import PreferenceRecord
    from realm_cli.train.metrics import evaluate_sets

    def rec(source, i):
        return PreferenceRecord(prompt=[{"role": "user", "content": f"question {i}?"}], chosen=f"a long answer {i}",
                                rejected="no", source=source, id=str(i))

    records = [rec("hh-rlhf", i) for i in range(5)] + [rec("pandalm", i) for i in range(3)]
    metrics, _ = evaluate_sets(rmlib.load(tiny_bert_dir), {"held-out": records, "other": records[:5]}, 4)
    assert set(metrics) == {"held-out", "held-out/hh-rlhf", "held-out/pandalm", "other"}
    assert (metrics["held-out/hh-rlhf"]["pairs"], metrics["held-out/pandalm"]["pairs"]) == (5, 3)
    both = metrics["held-out/hh-rlhf"]["accuracy"] * 5 + metrics["held-out/pandalm"]["accuracy"] * 3
    assert metrics["held-out"]["accuracy"] * 8 == pytest.approx(both)
    # The same 5 pairs, scored in batches of another shape (4+1 here, 4+4 mixed with pandalm there): BLAS picks other
    # kernels and reduction orders for other shapes (AVX2 vs AVX512/AMX CPUs differ too), so the scores agree to
    # float32 rounding, not bit for bit.
    scalars = [k for k, v in metrics["other"].items() if isinstance(v, float)]
    assert {k: metrics["other"][k] for k in scalars} == pytest.approx(
        {k: metrics["held-out/hh-rlhf"][k] for k in scalars}, rel=1e-4, abs=1e-5)
    # every set and per-source slice carries its interval and the length baselines on its own pairs: the 5 HH pairs
    # have the longer chosen answer, so "longer wins" is right on all of them
    for name in metrics:
        assert len(metrics[name]["ci95"]) == 2 and "length" in metrics[name]
    assert metrics["held-out/hh-rlhf"]["length"]["longer_wins"]["accuracy"] == 1.0
    assert metrics["held-out/pandalm"]["length"]["longer_wins"]["n"] == 3


def test_bf16_lora_on_cpu_trains_fp32_adapters_on_a_bf16_base(tmp_path, tiny_llama_dir):
    """bf16 on a CPU with LoRA: the frozen base runs in bf16, what trains (adapters, score head) stays fp32 and is
    saved fp32; the saved RM reloads onto the fp32 base within bf16 rounding of the live model's scores."""
    import torch
    from safetensors import safe_open

    lora = "  lora: {r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}"
    metrics, out = _train(tmp_path, tiny_llama_dir, lora=lora, trainer={"precision": "bf16"})
    train = metrics["train"]
    assert train["bf16_base"] is True and train["master_weights"] is False
    assert train["precision_mode"].startswith("bf16 frozen base")
    assert train["reload_max_abs_diff"] < 0.05  # bf16 rounding of the base, not a lost (random) head
    assert metrics["validation"]["held-out"]["accuracy"] >= 0.9
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        dtypes = {k: f.get_tensor(k).dtype for k in f.keys()}
    assert any("score" in k for k in dtypes) and set(dtypes.values()) == {torch.float32}


def test_fp32_lora_keeps_an_fp32_base(tmp_path, tiny_llama_dir):
    lora = "  lora: {r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}"
    metrics, _ = _train(tmp_path, tiny_llama_dir, lora=lora, trainer={"precision": "fp32", "max_steps": 2})
    assert metrics["train"]["bf16_base"] is False and metrics["train"]["reload_max_abs_diff"] < 1e-5
