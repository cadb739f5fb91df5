"""train-rm says which precision it trains in and why (items: precision line, metrics), and honours a training time
budget (trainer.max_minutes) by planning the step count and the LR schedule, not by cutting the run."""

from __future__ import annotations

import json
import math

import pytest
from support.rm_helpers import write_pairs, write_recipe

from realm_cli.recipes import runner
from realm_cli.train.preflight import describe_precision, resolve_precision


@pytest.mark.parametrize("has_bf16", [True, False])
def test_precision_is_described_on_any_cpu(monkeypatch, has_bf16):
    from realm_cli import models

    monkeypatch.setattr(models, "bf16_supported", lambda device="cpu": has_bf16)
    precision = resolve_precision("auto", "cpu")
    mode, reason = describe_precision("auto", precision, "cpu", master=precision == "bf16")
    if has_bf16:
        assert (precision, mode) == ("bf16", "bf16 weights + fp32 master copies") and reason.endswith("CPU")
    else:
        assert (precision, mode, reason) == ("fp32", "fp32", "this CPU has no bf16 units: no AMX, no AVX512-BF16")
    assert describe_precision("fp32", "fp32", "cpu", False) == ("fp32", "trainer.precision=fp32")
    forced = describe_precision("bf16", "bf16", "cpu", False)
    assert forced[0] == "bf16 autocast over fp32 weights"
    assert ("emulated" in forced[1]) is (not has_bf16)
    assert describe_precision("auto", "fp16", "cuda", False)[1] == "this GPU has no bf16"


def test_time_budget_plans_the_steps_and_ends_the_lr_schedule(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    from realm_cli import models
    from realm_cli.train import trainer as trainer_mod

    monkeypatch.setattr(models, "bf16_supported", lambda device="cpu": False)  # the fp32 path on any CPU
    seen = {}
    real = trainer_mod.time_budget_callback

    def spy(minutes, **kw):
        seen["cb"] = real(minutes, **kw)
        return seen["cb"]

    monkeypatch.setattr("realm_cli.train.bt.time_budget_callback", spy)
    data = write_pairs(tmp_path / "pairs.jsonl", n=40)
    out = tmp_path / "out"
    # 30 pairs, batch 4, 100 epochs = 800 steps without the budget: far more than 3 seconds allow
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, out, validation_split=0.25,
                          trainer={"epochs": 100, "max_minutes": 0.05, "logging_steps": 1000,
                                   "warmup_ratio": 0.1})
    metrics = runner.run("train-rm", str(recipe), [])
    plan = metrics["train"]["time_budget"]
    assert plan["steps_without_budget"] == 800
    assert 7 < plan["planned_steps"] < 800 and plan["seconds_per_step"] > 0
    assert metrics["train"]["steps"] == plan["planned_steps"]
    assert plan["wall_seconds"] < 0.05 * 60 * 2  # about the budget, not 800 steps
    cb = seen["cb"]
    history = cb.trainer.state.log_history
    last = [h for h in history if "learning_rate" in h][-1]
    planned = plan["planned_steps"]
    # HF logs the rate the step used: the schedule's last step before its end, 1/(decay steps) of the peak
    assert last["step"] == planned and last["learning_rate"] <= 1.0e-3 * 1.001 / (planned - math.ceil(0.1 * planned))
    assert cb.trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # the schedule has ended
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["train"]["time_budget"]["planned_steps"] == plan["planned_steps"]
    assert saved["train"]["precision"] == "fp32" and saved["train"]["precision_mode"] == "fp32"
    assert saved["train"]["precision_reason"] == "this CPU has no bf16 units: no AMX, no AVX512-BF16"
    assert "precision: fp32 (this CPU has no bf16 units: no AMX, no AVX512-BF16)" in capsys.readouterr().err


def test_rescaled_schedule_keeps_warmup_proportional():
    import torch
    from transformers import get_scheduler

    from realm_cli.train.trainer import rescale_schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler("linear", opt, num_warmup_steps=10, num_training_steps=100)
    for _ in range(5):
        opt.step()
        sched.step()
    assert rescale_schedule(sched, 20, 2)
    assert opt.param_groups[0]["lr"] == pytest.approx(15 / 18)  # past the new warmup, decaying to step 20
    for _ in range(15):
        opt.step()
        sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.0)


def test_the_demo_recipe_has_a_time_budget():
    """`make demo` (cpu-minilm) must fit 8 minutes on any 2-core CPU: fp32-only CPUs train ~5x slower, so the
    budget, not the epoch count, bounds the run there; ~75 s of loading and validation come on top."""
    from realm_cli.recipes import recipe as recipes

    options = recipes.load("cpu-minilm").trainer.options
    assert options.max_minutes is not None and options.max_minutes + 1.5 <= 8
