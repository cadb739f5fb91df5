"""bf16 weights with fp32 master copies: updates survive, match fp32 AdamW, resume exactly, save as fp32."""

from __future__ import annotations

import copy
import json

import torch
from support.rm_helpers import write_pairs, write_recipe

from realm_cli.recipes import runner
from realm_cli.train.master_weights import MasterWeightAdamW


def _bf16_linear(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(64, 64).to(torch.bfloat16)


def _grads(steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(64, 64, generator=g).bfloat16(), torch.randn(64, generator=g).bfloat16())
            for _ in range(steps)]


def _run(model, opt, grads):
    for gw, gb in grads:
        model.weight.grad, model.bias.grad = gw.clone(), gb.clone()
        opt.step()
        opt.zero_grad()


def test_master_copies_keep_updates_that_bf16_weights_round_away():
    grads = _grads(20)
    plain = _bf16_linear()
    start = plain.weight.detach().clone()
    _run(plain, torch.optim.AdamW(plain.parameters(), lr=1e-5), grads)
    # the reason for the class: most 1e-5 steps are below half a bf16 ulp and vanish
    assert (plain.weight == start).float().mean() > 0.5

    ours = _bf16_linear()
    opt = MasterWeightAdamW(ours.parameters(), lr=1e-5)
    _run(ours, opt, grads)
    masters = [m for _, m in opt.pairs]
    moved = (masters[0] - start.float()).abs()
    assert masters[0].dtype == torch.float32 and (moved > 0).float().mean() > 0.99
    assert ours.weight.dtype == torch.bfloat16
    assert torch.equal(ours.weight, masters[0].bfloat16())  # the model holds the rounded masters


def test_masters_follow_fp32_adamw_exactly_given_the_same_gradients():
    grads = _grads(15)
    ours = _bf16_linear()
    opt = MasterWeightAdamW([{"params": [ours.weight], "weight_decay": 0.1},
                             {"params": [ours.bias], "weight_decay": 0.0}], lr=1e-3, fused=True)
    ref = _bf16_linear().float()
    ref_opt = torch.optim.AdamW([{"params": [ref.weight], "weight_decay": 0.1},
                                 {"params": [ref.bias], "weight_decay": 0.0}], lr=1e-3, fused=True)
    _run(ours, opt, grads)
    for gw, gb in grads:
        ref.weight.grad, ref.bias.grad = gw.float(), gb.float()
        ref_opt.step()
        ref_opt.zero_grad()
    assert torch.equal(opt.pairs[0][1], ref.weight) and torch.equal(opt.pairs[1][1], ref.bias)


def test_state_dict_round_trip_restores_the_masters_not_the_rounded_weights():
    grads = _grads(10)
    a = _bf16_linear()
    opt_a = MasterWeightAdamW(a.parameters(), lr=1e-4)
    _run(a, opt_a, grads[:5])
    state = copy.deepcopy(opt_a.state_dict())  # what torch.save + torch.load of a checkpoint gives back

    b = _bf16_linear()
    b.load_state_dict(a.state_dict())  # what a checkpoint's model file gives back: bf16-rounded weights
    opt_b = MasterWeightAdamW(b.parameters(), lr=1e-4)
    opt_b.load_state_dict(state)
    _run(a, opt_a, grads[5:])
    _run(b, opt_b, grads[5:])
    assert torch.equal(opt_a.pairs[0][1], opt_b.pairs[0][1])

    opt_b.restore(b)
    assert b.weight.dtype == torch.float32 and torch.equal(b.weight, opt_a.pairs[0][1])


def test_bf16_train_rm_on_cpu_trains_with_master_weights_and_saves_fp32(tmp_path, tiny_bert_dir):
    data = write_pairs(tmp_path / "pairs.jsonl", n=48)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, out, trainer={"precision": "bf16"})
    metrics = runner.run("train-rm", str(recipe), [])
    assert metrics["train"]["master_weights"] is True and metrics["train"]["precision"] == "bf16"
    assert metrics["train"]["reload_max_abs_diff"] < 1e-5  # what was saved is the fp32 master model
    assert metrics["validation"]["held-out"]["accuracy"] >= 0.9
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"

    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_fp32_train_rm_does_not_use_master_weights(tmp_path, tiny_bert_dir):
    data = write_pairs(tmp_path / "pairs.jsonl", n=24)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, tmp_path / "out",
                          trainer={"precision": "fp32", "max_steps": 2})
    assert runner.run("train-rm", str(recipe), [])["train"]["master_weights"] is False
