"""`realm align` under DeepSpeed ZeRO-3 on 2 CPU processes, for real: the shipped Llama-3-8B ZeRO-3 recipes with
overrides that swap in a tiny policy and put the launcher on 2 CPU processes (``deepspeed_cpu``).

Each run proves it really was distributed (the failure mode is silent: one process, or copies that never meet):
world size 2, a ``DeepSpeedEngine`` at stage 3, every rank holding only part of the parameters. Then: both ranks
sampled their share from the partitioned policy and ended with the same gathered samples, the reference model is
the one DPO expects (round 2 starts at loss ln 2), the log comes from rank 0 only, and the policy saved from the
gathered weights loads with plain ``from_pretrained`` (here, in a process of its own).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from support.align_toys import char_llama_dir, one_thread  # noqa: F401 - fixtures

PROMPTS = '["hello there", "how are you", "tell me a joke", "name a color", "say hi", "why is the sky blue"]'
TINY = ["model.dtype=float32", "reward=embedding", f"trainer.prompts={PROMPTS}", "trainer.rounds=2", "trainer.k=2",
        "trainer.prompts_per_round=4", "trainer.heldout=2", "trainer.heldout_samples=1", "trainer.max_new_tokens=8",
        "trainer.train_batch_size=2", "trainer.gradient_accumulation_steps=1", "trainer.learning_rate=1e-2",
        "trainer.bf16=false", "trainer.eval_reward=none",
        "launch.accelerate_config=deepspeed_cpu", "launch.num_processes=2"]


def align_zero3(tmp_path, recipe: str, model_dir: str, *extra: str):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "realm_cli.cli", "align", "--recipe", recipe,
                          f"model.name={model_dir}", f"output_dir={out}", *TINY, *extra],
                         capture_output=True, text=True, env=env, timeout=400)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads((out / "metrics.json").read_text()), run.stderr, out


def assert_really_zero3(metrics: dict) -> None:
    dist = metrics["distributed"]
    assert dist["world_size"] == 2 and dist["backend"] == "gloo"
    assert dist["engine"] == "deepspeed.runtime.engine.DeepSpeedEngine" and dist["strategy"] == "zero3"
    assert len(dist["param_numel_per_rank"]) == 2
    assert all(0 < held < dist["parameters"] for held in dist["param_numel_per_rank"]), dist
    # realm's own sampling (the held-out answers; DPO's pairs too): each rank sampled a share from the partitioned
    # policy, and every rank ended with all of them
    shares, gathered = dist["sampled_tokens_per_rank"], dist["gathered_tokens_per_rank"]
    assert all(s > 0 for s in shares) and gathered[0] == gathered[1] == sum(shares), dist


def assert_rank_zero_log(stderr: str, metrics: dict) -> None:
    assert stderr.count("aligned policy saved to") == 1
    assert stderr.count("held-out: base policy: answering 2 held-out prompts") == 1
    assert "shared out over 2 processes" in stderr
    for r in (1, 2):
        assert stderr.count(f"round {r}/2: training step 1/") == 1, stderr[-3000:]


def change_from_base(policy_dir, base_dir) -> float:
    """Load the saved policy and its base with plain from_pretrained; the largest change of the next-token logits on
    one prompt. A policy saved from a rank's shards (empty or partial tensors) fails to load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(base_dir)("tell me a joke", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = [AutoModelForCausalLM.from_pretrained(d).eval()(ids).logits for d in (policy_dir, base_dir)]
    return float((logits[0] - logits[1]).abs().max())


def test_each_rank_samples_its_share_and_the_gathered_order_is_the_one_process_order(char_llama_dir, one_thread):
    from realm_cli.align import policy, shards
    from realm_cli.align.sampling import Sampling, sample
    from realm_cli.recipes.recipe import ModelConfig

    cfg = ModelConfig(name=char_llama_dir)
    tokenizer = policy.load_tokenizer(cfg)
    model = policy.load_model(cfg, tokenizer)
    prompts = [[{"role": "user", "content": p}] for p in ("hi", "say a", "bye")]
    settings = Sampling(max_new_tokens=4, batch_size=2)
    whole = sample(model, tokenizer, prompts, k=3, settings=settings)
    parts = [sample(model, tokenizer, prompts, k=3, settings=settings, share=(r, 2)) for r in (0, 1)]
    assert [len(p.texts) for p in parts] == [5, 4]  # 9 samples over 2 ranks, balanced to within one
    assert shards.interleave([p.prompt_index for p in parts]) == whole.prompt_index == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert shards.interleave([p.query_ids for p in parts]) == whole.query_ids
    assert shards.gather(parts[0].texts, 1) == parts[0].texts and shards.world() == (0, 1)


@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["zero3"])
def test_dpo_under_zero3_on_two_cpu_processes(tmp_path, char_llama_dir, strategy):
    metrics, stderr, out = align_zero3(tmp_path, "align-dpo-llama3-8b-lora-zero3-nim", char_llama_dir)
    assert_really_zero3(metrics)
    assert_rank_zero_log(stderr, metrics)
    first, second = metrics["round_summaries"]
    assert first["pairs"] > 0 and second["pairs"] > 0, metrics["round_summaries"]
    # round 1 moved the policy; round 2's reference is TRL's frozen copy of the adapter as round 2 starts (copied
    # from the gathered weights, not from this rank's shard), so its first DPO loss is exactly ln 2 again
    assert abs(second["kl"]) > 1e-6
    assert abs(first["dpo_loss_first"] - math.log(2)) < 1e-4 and abs(second["dpo_loss_first"] - math.log(2)) < 1e-4
    assert metrics["skipped"]["unscored_samples"] == 0
    # the recipe merges the LoRA adapter: a plain model, every weight full size, the trained ones changed
    assert not (out / "policy" / "adapter_config.json").exists()
    assert change_from_base(out / "policy", char_llama_dir) > 1e-4


@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["zero3"])
def test_grpo_under_zero3_on_two_cpu_processes(tmp_path, char_llama_dir, strategy):
    metrics, stderr, out = align_zero3(tmp_path, "align-grpo-llama3-8b-lora-zero3-qrm", char_llama_dir,
                                       "trainer.merge_lora=false")
    assert_really_zero3(metrics)
    assert_rank_zero_log(stderr, metrics)
    assert all(r["steps"] >= 1 and math.isfinite(r["reward"]) and math.isfinite(r["kl"])
               for r in metrics["round_summaries"]), metrics["round_summaries"]
    assert math.isfinite(metrics["heldout"]["heldout_kl_to_base"])
    # an unmerged adapter, gathered before saving: from_pretrained finds its base and applies it
    from safetensors.torch import load_file

    adapter = load_file(out / "policy" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(t.shape[1] == 16 and t.shape[0] in (32, 64, 16) for t in lora_b), \
        {n: t.shape for n, t in adapter.items()}
    assert max(float(t.abs().max()) for t in lora_b) > 0  # LoRA B starts at zero: trained, and saved whole
    assert change_from_base(out / "policy", char_llama_dir) > 1e-4
