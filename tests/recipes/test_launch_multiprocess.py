"""A real two-process CPU (gloo) training run, launched by realm through `accelerate launch`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.rm_helpers import write_pairs, write_recipe

pytestmark = pytest.mark.distributed


@pytest.mark.parametrize("strategy", ["ddp"])
def test_two_cpu_processes_train_one_reward_model(strategy, tmp_path, tiny_bert_dir):
    data = write_pairs(tmp_path / "pairs.jsonl", n=40)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, out, trainer={"max_steps": 4},
                          launch="launch: {accelerate_config: multi_cpu, num_processes: 2}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    dry = subprocess.run([sys.executable, "-m", "realm_cli.cli", "train-rm", "--recipe", str(recipe), "--dry-run"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert "accelerate.commands.launch" in dry.stdout and "--launched" in dry.stdout

    run = subprocess.run([sys.executable, "-m", "realm_cli.cli", "train-rm", "--recipe", str(recipe)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["world_size"] == 2
    assert metrics["distributed"]["strategy"] == strategy and metrics["distributed"]["world_size"] == 2
    assert metrics["train"]["steps"] == 4
    # 4 steps x 4 pairs per process x 2 processes cover 32 of the 30 train pairs: both ranks fed the one model.
    assert metrics["train"]["pairs_per_second"] > 0
    assert metrics["validation"]["held-out"]["pairs"] == 10
    assert (out / "model.safetensors").is_file() and (out / "recipe.yaml").is_file()
