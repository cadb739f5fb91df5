"""The train-rm recipes: valid, their hardware profiles as the issue gives them, GPU launch commands, and the
TrainingArguments each would get (DeepSpeed JSON included, as each process sees it under accelerate)."""

from __future__ import annotations

import json
import shlex

import pytest

from realm_cli.recipes import recipe as recipes

from realm_cli.recipes import runner
from realm_cli.train.preflight import uses_master_weights
from realm_cli.train.trainer import training_arguments

RECIPES = ["cpu-minilm", "cpu-quality", "cpu-smollm2-lora", "gpt2-lora-6gb", "gpt2-12gb", "gpt2-24gb", "gemma2b-zero3",
           "gemma7b-4xa100", "llama3-8b-zero3-8gpu"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_validates_and_names_its_command(name):
    recipe = recipes.load(name)
    assert recipe.header == f"realm train-rm --recipe {name}"
    assert recipe.trainer.name == "bt" and recipe.data.max_length


@pytest.mark.parametrize("name, bs, accum, precision, max_length", [
    ("gpt2-lora-6gb", 1, 16, "fp16", 384),
    ("gpt2-12gb", 4, 4, "fp16", 512),
    ("gpt2-24gb", 8, 2, "bf16", 1024),
])
def test_gpt2_hardware_profiles(name, bs, accum, precision, max_length):
    recipe = recipes.load(name)
    t = recipe.trainer.options
    assert (t.per_device_batch_size, t.gradient_accumulation_steps, t.precision, recipe.data.max_length) == (
        bs, accum, precision, max_length)
    if name == "gpt2-lora-6gb":
        lora = recipe.model.lora
        assert (lora.r, lora.alpha, lora.dropout, lora.target_modules) == (16, 32, 0.05, ["c_attn", "c_proj"])


def test_zero3_recipe_hands_the_deepspeed_json_to_training_arguments(tmp_path):
    recipe = recipes.load("gemma2b-zero3")
    assert recipe.model.gradient_checkpointing and recipe.data.max_length == 4096
    kw = training_arguments(recipe.trainer.options, recipe, tmp_path, "bf16", "cuda", 100)
    ds = json.loads(open(kw["deepspeed"]).read())
    assert ds["zero_optimization"]["stage"] == 3
    assert kw["activation_checkpointing"] is True and kw["bf16"] and not kw["use_cpu"]
    assert kw["max_length"] is None  # realm fits lengths itself; TRL's filter would drop pairs


@pytest.mark.parametrize("name, processes, flag", [
    ("gemma2b-zero3", "4", "--deepspeed_config_file"),
    ("llama3-8b-zero3-8gpu", "8", "--deepspeed_config_file"),
    ("gemma7b-4xa100", "4", "fsdp.yaml"),
])
def test_gpu_recipes_dry_run_prints_the_accelerate_command(capsys, name, processes, flag):
    assert runner.run("train-rm", name, [], dry_run=True) is None
    argv = shlex.split(capsys.readouterr().out.strip())
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    assert argv[argv.index("--num_processes") + 1] == processes
    assert any(flag in a for a in argv) and argv[-1] == "--launched"


def test_reentered_zero3_run_on_cpu_fails_before_work(tmp_path):
    from realm_cli.errors import RealmError

    with pytest.raises(RealmError, match="needs CUDA GPUs"):
        runner.run("train-rm", "gemma2b-zero3", [f"output_dir={tmp_path}/o"], launched=True)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["cpu-minilm", "cpu-smollm2-lora"])
def test_cpu_recipes_build_real_reward_configs(tmp_path, name):
    from trl import RewardConfig

    recipe = recipes.load(name)
    args = RewardConfig(**training_arguments(recipe.trainer.options, recipe, tmp_path, "bf16", "cpu", 50))
    # full fine-tuning trains bf16 weights with fp32 masters (no autocast); LoRA autocasts over fp32 adapters
    master = uses_master_weights(recipe, "bf16", "cpu")
    assert master == (recipe.model.lora is None) and args.bf16 == (not master)
    assert args.use_cpu and not args.activation_checkpointing
    assert args.train_sampling_strategy == "group_by_length" and args.length_column_name == "length"
