"""`realm export` / `realm push`: a run's model as a plain directory that loads with from_pretrained and scores or
generates exactly as the run's own model, with a model card; push tested against a local directory target."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from realm_cli.cli import build_app
from support.align_toys import char_llama_dir  # noqa: F401 - a fixture


def run_dir_with(tmp_path, model_src, *, policy: bool, recipe: dict):
    run = tmp_path / "run"
    target = run / "policy" if policy else run
    shutil.copytree(model_src, target)
    (run / "recipe.yaml").write_text("# realm train-rm --recipe cpu-minilm\n" + yaml.safe_dump(recipe))
    (run / "metrics.json").write_text(json.dumps({"held-out": {"accuracy": 0.625, "pairs": 8}}))
    return run


def test_a_lora_policy_exports_merged_and_generates_the_same(tmp_path, char_llama_dir):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(char_llama_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                                      task_type="CAUSAL_LM"))
    model.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(char_llama_dir).save_pretrained(tmp_path / "adapter")
    run = run_dir_with(tmp_path, tmp_path / "adapter", policy=True,
                       recipe={"command": "align", "model": {"name": char_llama_dir}, "data": {"train": [{"name": "hh-rlhf"}]}})
    out = tmp_path / "export"
    result = CliRunner().invoke(build_app(), ["export", str(run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "adapter_config.json").exists()  # merged: a plain model
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(char_llama_dir), run / "policy").eval()
    ids = torch.tensor([[1, 5, 9, 12, 3]])
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, peft(ids).logits, atol=1e-5)
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and f"base_model: {char_llama_dir}" in card and "`hh-rlhf`" in card
    assert "realm train-rm --recipe cpu-minilm" in card and '"accuracy": 0.625' in card


def test_a_reward_model_exports_and_pushes_to_a_local_target(tmp_path, tiny_bert_dir):
    from realm_cli.rewards import rm

    run = run_dir_with(tmp_path, tiny_bert_dir, policy=False,
                       recipe={"command": "train-rm", "model": {"name": "minilm-l6"}})
    result = CliRunner().invoke(build_app(), ["push", str(run), "me/tiny-rm", "--local-dir", str(tmp_path / "hub")])
    assert result.exit_code == 0, result.output
    pushed = tmp_path / "hub" / "me" / "tiny-rm"
    assert {"README.md", "config.json", "recipe.yaml", "metrics.json"} <= {p.name for p in pushed.iterdir()}
    prompts, responses = [[{"role": "user", "content": "q?"}]] * 2, ["a fine answer", "no"]
    assert rm.score(rm.load(str(pushed)), prompts, responses, precision="fp32") == pytest.approx(
        rm.score(rm.load(str(run)), prompts, responses, precision="fp32"), abs=1e-6)
    again = CliRunner().invoke(build_app(), ["export", str(run), "-o", str(pushed)])  # never into a non-empty folder
    assert again.exit_code == 2 and "not an empty directory" in again.output
    bad = CliRunner().invoke(build_app(), ["push", str(run), "no-owner", "--local-dir", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "OWNER/NAME" in bad.output
    nothing = CliRunner().invoke(build_app(), ["export", str(tmp_path), "-o", str(tmp_path / "y")])
    assert nothing.exit_code == 2 and "holds no model" in nothing.output
