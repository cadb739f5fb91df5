"""A run killed with SIGKILL mid-way continues from its last complete checkpoint with --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from support.rm_helpers import write_pairs, write_recipe

from realm_cli.recipes import runner


def test_kill_9_then_resume_to_completion(tmp_path, tiny_bert_dir):
    data = write_pairs(tmp_path / "pairs.jsonl", n=100)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, out,
                          # bf16 on CPU = bf16 weights + fp32 master copies: the masters must come back too
                          trainer={"max_steps": 40, "save_steps": 5, "precision": "bf16"},
                          validation_split=0.2)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "realm_cli.cli", "train-rm", "--recipe", str(recipe)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    first = out / "checkpoints" / "checkpoint-5" / "trainer_state.json"
    deadline = time.monotonic() + 240
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the run never wrote its first checkpoint"
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists()  # it really died before finishing

    metrics = runner.run("train-rm", str(recipe), [], resume=True)
    resumed = int(metrics["train"]["resumed_from"].rsplit("-", 1)[1])
    assert resumed >= 5
    assert metrics["train"]["steps"] == 40
    assert metrics["train"]["steps_this_run"] == 40 - resumed
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["train"]["steps"] == 40 and saved["validation"]["held-out"]["pairs"] == 20
    assert saved["train"]["master_weights"] and saved["train"]["reload_max_abs_diff"] < 1e-5
