"""train-rm under DeepSpeed ZeRO-2/3 (+offload, +LoRA) and FSDP2, for real: two CPU processes over gloo, launched by
realm through the shipped GPU recipes (``gemma2b-zero3``, ``gemma7b-4xa100``) with overrides that swap in a tiny
Llama, a local pairs file and the CPU launcher. Every test first proves the run really was distributed (world size
2, gloo, the engine or wrapper class, each rank's share of the parameters): a sharding request that quietly ran
unsharded is the failure mode. Then: the loss falls, the saved (gathered) model reloads with a plain
``from_pretrained`` and reproduces the live sharded model's scores, and ZeRO-3 ``--resume`` continues its
checkpoint to the right step. FSDP on a CPU needs accelerate forced: ``tests/support/fsdp_cpu_shim`` (test-only)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.rm_helpers import write_pairs
from support.shared import REPO

pytestmark = pytest.mark.distributed

SHIM = REPO / "tests" / "support" / "fsdp_cpu_shim"
STEPS = 8  # x 2 pairs per rank x 2 ranks: 32 of the 36 train pairs


def tiny_overrides(model_dir: str, data: Path, out: Path, *, lr: float = 1e-3) -> list[str]:
    """What turns a GPU recipe into a 2-CPU-process run of a tiny model; its launch strategy is kept."""
    return [f"output_dir={out}", f"model.name={model_dir}", "model.dtype=auto",
            f"data.train=[{{name: preference, path: {data}}}]", "data.validation={}", "data.validation_split=0.25",
            "data.max_length=64", "trainer.per_device_batch_size=2", "trainer.gradient_accumulation_steps=1",
            f"trainer.max_steps={STEPS}", f"trainer.learning_rate={lr}", "trainer.save_steps=4",
            "trainer.logging_steps=2", "trainer.num_threads=1", "launch.num_processes=2"]


LORA = ["model.lora.r=8", "model.lora.alpha=16", "model.lora.target_modules=[q_proj, v_proj]", "trainer.merge=true"]


def train(recipe: str, overrides: list[str], out: Path, *, env: dict | None = None, resume: bool = False) -> dict:
    argv = [sys.executable, "-m", "realm_cli.cli", "train-rm", "--recipe", recipe, *overrides]
    run = subprocess.run(argv + (["--resume"] if resume else []), capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})})
    assert run.returncode == 0, run.stderr[-4000:]
    assert "distributed: " in run.stderr  # the one line that tells the user how the run was laid out
    return json.loads((out / "metrics.json").read_text())


def assert_distributed(metrics: dict, strategy: str, engine: str) -> dict:
    info = metrics["distributed"]
    assert metrics["train"]["world_size"] == 2 and info["world_size"] == 2
    assert info["backend"] == "gloo"
    assert info["strategy"] == strategy and engine in info["engine"], info
    assert len(info["param_numel_per_rank"]) == 2
    return info


def assert_params_partitioned(info: dict) -> None:
    """Each rank holds about half of every parameter (ZeRO-3's ds_tensor / FSDP2's local shard), and the halves
    add up to the model (ZeRO-3 pads each partition by at most world_size - 1 elements)."""
    total = info["parameters"]
    for held in info["param_numel_per_rank"]:
        assert 0.45 * total < held < 0.55 * total, info
    assert total <= sum(info["param_numel_per_rank"]) <= total * 1.001, info


def assert_loss_falls(out: Path) -> list[float]:
    state = json.loads((out / "checkpoints" / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == STEPS // 2 and losses[-1] < losses[0] - 0.005, losses
    return losses


def assert_reload_matches(out: Path, metrics: dict, model_dir: Path) -> None:
    """The saved model loads with plain transformers (no realm, no DeepSpeed) and scores the job's probe pairs
    as the live, sharded model did inside the job (``live_scores``), to 1e-5."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from realm_cli.data import load as datalib
    from realm_cli.data.length import PairFitter
    from realm_cli.recipes import recipe as recipes
    from realm_cli.rewards.rm import RMFormat

    recipe = recipes.load(str(out / "recipe.yaml"), [])
    fmt = RMFormat(AutoTokenizer.from_pretrained(out), metrics["train"]["max_length"])
    held_out = datalib.load(recipe.data, fit=PairFitter(fmt, recipe.data.overlong)).validation["held-out"]
    seqs = [fmt.fit(r.prompt, r.chosen).ids for r in held_out[:16]]
    live = metrics["train"]["live_scores"]
    assert len(live) == len(seqs) == 12
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        reloaded = [model(input_ids=torch.tensor([ids])).logits.item() for ids in seqs]
    assert max(abs(a - b) for a, b in zip(live, reloaded)) < 1e-5, (live, reloaded)
    assert metrics["train"]["reload_max_abs_diff"] < 1e-5
    assert max(live) - min(live) > 1e-4  # a trained head, not a constant


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl", n=48)


def test_zero3_full_trains_sharded_saves_gathered_and_resumes(tmp_path, tiny_llama_dir, data):
    out = tmp_path / "out"
    overrides = tiny_overrides(tiny_llama_dir, data, out) + ["launch.accelerate_config=deepspeed_cpu"]
    first = train("gemma2b-zero3", overrides, out)
    info = assert_distributed(first, "zero3", "deepspeed.runtime.engine.DeepSpeedEngine")
    assert_params_partitioned(info)
    assert info["offload_optimizer"] == "none" and first["train"]["precision"] == "fp32"
    assert_loss_falls(out)
    assert_reload_matches(out, first, out)
    # A real ZeRO-3 checkpoint: one partition file per rank.
    shards = sorted(p.name for p in (out / "checkpoints" / "checkpoint-4" / "global_step4").glob("*model_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]

    # Interrupted after step 4: --resume continues that checkpoint to the same end.
    shutil.rmtree(out / "checkpoints" / f"checkpoint-{STEPS}")
    (out / "metrics.json").unlink()
    resumed = train("gemma2b-zero3", overrides, out, resume=True)
    assert_distributed(resumed, "zero3", "DeepSpeedEngine")
    assert resumed["train"]["resumed_from"].endswith("checkpoint-4")
    assert resumed["train"]["steps"] == STEPS and resumed["train"]["steps_this_run"] == STEPS - 4
    assert max(abs(a - b) for a, b in zip(resumed["train"]["live_scores"], first["train"]["live_scores"])) < 1e-5


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_zero2_shards_the_optimizer_not_the_parameters(tmp_path, tiny_llama_dir, data, lora):
    out = tmp_path / "out"
    metrics = train("gemma2b-zero3", tiny_overrides(tiny_llama_dir, data, out, lr=1e-2 if lora else 1e-3) + [
        "launch.accelerate_config=deepspeed_cpu", "launch.deepspeed_config=zero2"] + (LORA if lora else []), out)
    info = assert_distributed(metrics, "zero2", "DeepSpeedEngine")
    assert metrics["train"]["lora"] == lora
    assert info["param_numel_per_rank"] == [info["parameters"]] * 2  # every rank keeps the whole model
    for held in info["optimizer_numel_per_rank"]:  # ... and half of the fp32 optimizer partition
        assert 0.45 * info["trainable_parameters"] < held < 0.55 * info["trainable_parameters"], info
    assert_loss_falls(out)
    assert metrics["train"]["reload_max_abs_diff"] < 1e-5  # not sharded: realm's rank-0 reload check runs
    if lora:
        from transformers import AutoModelForSequenceClassification

        assert AutoModelForSequenceClassification.from_pretrained(out / "merged").num_labels == 1


def test_zero3_offload_with_lora(tmp_path, tiny_llama_dir, data):
    out = tmp_path / "out"
    metrics = train("gemma2b-zero3", tiny_overrides(tiny_llama_dir, data, out, lr=1e-2) + LORA + [
        "launch.accelerate_config=deepspeed_cpu", "launch.deepspeed_config=zero3_offload"], out)
    info = assert_distributed(metrics, "zero3", "DeepSpeedEngine")
    assert_params_partitioned(info)  # the frozen base is partitioned too
    assert info["offload_optimizer"] == "cpu" and info["offload_param"] == "cpu"
    assert info["optimizer"] == "AdamW"  # torch's, not a JIT-built DeepSpeedCPUAdam
    assert metrics["train"]["lora"] and info["trainable_parameters"] < 0.01 * info["parameters"]
    assert_loss_falls(out)
    assert_reload_matches(out, metrics, out / "merged")  # LoRA folded in: a plain model directory


def test_fsdp2_through_the_gemma7b_recipe_and_resume(tmp_path, tiny_llama_dir, data):
    """The shipped FSDP accelerate config, made CPU-sized (2 processes, no bf16 mixed precision); the name ends in
    "cpu" so realm's preflight accepts it, and the test-only shim lets accelerate pick FSDP on a CPU."""
    from realm_cli.recipes.launch import config_path

    settings = yaml.safe_load(config_path("accelerate_configs", "fsdp", ".yaml").read_text())
    assert settings["distributed_type"] == "FSDP" and settings["fsdp_config"]["fsdp_version"] == 2
    settings.update(num_processes=2, mixed_precision="no", main_process_ip="127.0.0.1", main_process_port=free_port())
    accelerate_yaml = tmp_path / "fsdp_cpu.yaml"
    accelerate_yaml.write_text(yaml.safe_dump(settings))
    out = tmp_path / "out"
    pythonpath = os.pathsep.join(p for p in (str(SHIM), os.environ.get("PYTHONPATH")) if p)
    overrides = tiny_overrides(tiny_llama_dir, data, out) + [f"launch.accelerate_config={accelerate_yaml}"]
    metrics = train("gemma7b-4xa100", overrides, out, env={"PYTHONPATH": pythonpath})
    info = assert_distributed(metrics, "fsdp2", "torch.distributed.fsdp")
    assert info["engine"].endswith("FSDPLlamaForSequenceClassification")
    assert_params_partitioned(info)
    assert_loss_falls(out)
    assert_reload_matches(out, metrics, out)

    shutil.rmtree(out / "checkpoints" / f"checkpoint-{STEPS}")
    (out / "metrics.json").unlink()
    resumed = train("gemma7b-4xa100", overrides, out, env={"PYTHONPATH": pythonpath}, resume=True)
    assert_distributed(resumed, "fsdp2", "torch.distributed.fsdp")
    assert resumed["train"]["resumed_from"].endswith("checkpoint-4")
    assert resumed["train"]["steps"] == STEPS and resumed["train"]["steps_this_run"] == STEPS - 4
    assert max(abs(a - b) for a, b in zip(resumed["train"]["live_scores"], metrics["train"]["live_scores"])) < 1e-5
