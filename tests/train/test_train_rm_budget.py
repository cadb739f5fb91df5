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


def test_the_budget_is_planned_again_when_the_probed_steps_were_the_slow_ones(monkeypatch):
    """HF's length-grouped sampler serves the longest batches first: a plan from the probe alone leaves most of the
    budget unused. Steps here take 3 s while probed, then 1 s: the re-plans spend the budget (to one step)."""
    import types

    from realm_cli.train import trainer as trainer_mod

    clock = {"t": 0.0}
    monkeypatch.setattr(trainer_mod.time, "perf_counter", lambda: clock["t"])
    args = types.SimpleNamespace(get_warmup_steps=lambda total: math.ceil(0.1 * total), device="cpu")
    state = types.SimpleNamespace(global_step=0, max_steps=10_000)
    control = types.SimpleNamespace(should_training_stop=False, should_log=False)
    args.save_strategy = "no"
    cb = trainer_mod.time_budget_callback(2.0)  # 120 s
    cb.on_train_begin(args, state, control)
    while not control.should_training_stop:
        clock["t"] += 3.0 if state.global_step < 7 else 1.0
        state.global_step += 1
        cb.on_step_end(args, state, control)
    plan = cb.plan
    assert plan["first_plan"] == 7 + math.floor((120 - 21) / 3.0)  # 40: what the probe alone gives
    # the mean since the probe began: (15 + 3) / 8 s at step 10, then closer to 1 s at each re-plan
    assert [(r["at_step"], r["planned_steps"]) for r in plan["replans"]] == [(10, 52), (26, 82), (62, 99)]
    assert plan["planned_steps"] == state.global_step == 99
    assert 0.9 * 120 <= clock["t"] <= 120  # 113 s: nearly the whole budget (the probe alone: 61 s), not overrun
    assert plan["steps_without_budget"] == 10_000


def test_a_replan_never_restarts_a_finished_warmup():
    import torch
    from transformers import get_scheduler

    from realm_cli.train.trainer import rescale_schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler("linear", opt, num_warmup_steps=4, num_training_steps=40)
    for _ in range(10):
        opt.step()
        sched.step()
    assert rescale_schedule(sched, 80, 4)  # the plan grew; warmup (done at step 4) stays
    assert opt.param_groups[0]["lr"] == pytest.approx(70 / 76)
