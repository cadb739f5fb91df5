"""Which process this is under ``accelerate launch`` (torchrun sets RANK and WORLD_SIZE; one process otherwise),
how the run is distributed, and the TrainingArguments every realm trainer needs for that.

``trainer_kwargs(device)`` is the one place the CPU multi-process settings live (train-rm and align both call it
before building their TrainingArguments); ``describe(trainer)`` says, after the trainer is prepared, whether the
run really is sharded (a CPU FSDP request that accelerate quietly ran as plain data parallel is the failure mode
this catches), for the line printed at the start and for metrics.json.
"""

from __future__ import annotations

import os
import warnings


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return rank() == 0


def deepspeed_launched() -> bool:
    """``accelerate launch --use_deepspeed`` (the recipe named a DeepSpeed JSON) started this process."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def fsdp_launched() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def trainer_kwargs(device: str) -> dict:
    """TrainingArguments keywords for the process group this process runs in. Call it before TrainingArguments are
    built: under DeepSpeed on a CPU it also readies DeepSpeed's CPU backend (``skip_shm_compile``).

    On a CPU with several processes: ``ddp_backend="gloo"`` (under DeepSpeed HF otherwise hands accelerate no
    backend, and each rank counted a world of one: DeepSpeed's batch-size check failed; plain DDP gets gloo from
    accelerate anyway), no pinned memory, and ``bf16=False`` under DeepSpeed or FSDP: those CPU runs check the
    sharded path in fp32 (realm's CPU bf16 is master weights or autocast, which a sharded engine does not run)."""
    kw: dict = {}
    if device != "cpu" or world_size() < 2:
        return kw
    kw["ddp_backend"] = "gloo"
    kw["dataloader_pin_memory"] = False  # nothing to pin for: a CPU has no device memory
    if deepspeed_launched() or fsdp_launched():
        kw["bf16"] = False
    if deepspeed_launched():
        # use_cpu=True would make HF start a plain gloo group (accelerate's MULTI_CPU) instead of DeepSpeed's, and
        # DeepSpeed, seeing its own comm uninitialised, would count a world of one. Off, accelerate initialises
        # DeepSpeed's comm (gloo), and DeepSpeed finds no CUDA and runs on its CPU accelerator.
        kw["use_cpu"] = False
        skip_shm_compile()
        # DeepSpeed calls torch's all_gather_into_tensor / reduce_scatter_tensor on every partitioned step, and
        # torch warns on each call (hundreds of lines a run).
        warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning)
    return kw


def skip_shm_compile() -> None:
    """DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce op (``deepspeed_shm_comm``) the first time a
    process group starts: about 3.5 minutes of C++ on 2 cores, on every fresh machine, and it needs a compiler. It
    only speeds up CPU all-reduce (DeepSpeed's CPU inference); gloo runs the same collectives correctly. realm's CPU
    DeepSpeed runs are for checking a recipe's DeepSpeed path with a small model, so it is switched off: DeepSpeed
    reads this table before building the op and falls back to torch.distributed."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def prepare_trainer(trainer, device: str) -> None:
    """After an HF/TRL trainer is built and before ``train()``: under DeepSpeed on a CPU with the optimizer
    offloaded (zero3_offload), let the trainer's torch AdamW step the offloaded partitions. Otherwise accelerate
    swaps it for DeepSpeedCPUAdam, right on a GPU machine (it keeps the step on the CPU fast) but here a ~3.5 min
    C++ JIT build for an optimizer that is no faster than torch's when everything already runs on the CPU."""
    if device != "cpu" or not getattr(trainer, "is_deepspeed_enabled", False):
        return
    config = trainer.accelerator.state.deepspeed_plugin.deepspeed_config
    if config.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none") != "none":
        config["zero_force_ds_cpu_optimizer"] = False


def strategy(engine_or_model) -> str:
    """zero1/2/3, fsdp2, ddp, single (one process) or unsharded (several, each with its own copy), from what the
    trainer actually wrapped the model in."""
    module = type(engine_or_model).__module__
    if module.startswith("deepspeed"):
        return f"zero{engine_or_model.zero_optimization_stage()}"
    if any(_is_sharded_dtensor(p) for p in engine_or_model.parameters()):
        return "fsdp2"
    if type(engine_or_model).__name__ == "DistributedDataParallel":
        return "ddp"
    return "single" if world_size() < 2 else "unsharded"


def _is_sharded_dtensor(param) -> bool:
    placements = getattr(param, "placements", None)
    return bool(placements) and any(type(p).__name__ == "Shard" for p in placements)


def local_numel(param) -> int:
    """The elements of ``param`` this rank holds: a ZeRO-3 partition (``ds_tensor``), an FSDP2 DTensor's local
    shard, else the whole tensor."""
    ds = getattr(param, "ds_tensor", None)
    if ds is not None:
        return ds.numel()
    to_local = getattr(param, "to_local", None)
    return to_local().numel() if to_local is not None else param.numel()


def full_numel(param) -> int:
    return getattr(param, "ds_numel", None) or param.numel()


def describe(trainer) -> dict:
    """How this run is distributed, after ``trainer`` prepared its model (call it on every rank: it gathers).
    ``param_share_per_rank``: each rank's fraction of the parameter elements it holds (about 1/world under ZeRO-3
    and FSDP2; 1.0 under DDP and ZeRO-2, which partition the optimizer state instead: ``optimizer_numel_per_rank``).
    Under ZeRO also where the optimizer state and parameters are offloaded, and the optimizer class that steps."""
    import torch

    wrapped = trainer.model_wrapped if trainer.model_wrapped is not None else trainer.model
    params = list(trainer.model.parameters())
    total = sum(full_numel(p) for p in params)
    held = sum(local_numel(p) for p in params)
    opt_held = _optimizer_numel(trainer)
    mine = torch.tensor([held, opt_held], dtype=torch.float64)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        shares = [torch.zeros_like(mine) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(shares, mine)
        backend = torch.distributed.get_backend()
    else:
        shares, backend = [mine], None
    trainable = sum(full_numel(p) for p in params if p.requires_grad)
    info = {"world_size": world_size(), "backend": backend, "strategy": strategy(wrapped),
            "engine": f"{type(wrapped).__module__}.{type(wrapped).__qualname__}",
            "parameters": total, "trainable_parameters": trainable,
            "param_numel_per_rank": [int(s[0]) for s in shares],
            "param_share_per_rank": [round(float(s[0]) / max(total, 1), 4) for s in shares],
            "optimizer_numel_per_rank": [int(s[1]) for s in shares]}
    if info["strategy"].startswith("zero"):  # where ZeRO keeps the optimizer state and the parameters, and who steps
        info["offload_optimizer"] = _offload_device(wrapped.zero_offload_optimizer())
        info["offload_param"] = _offload_device(wrapped.zero_offload_param())
        info["optimizer"] = type(wrapped.basic_optimizer).__name__
    return info


def check_layout(info: dict) -> None:
    """The launch asked for DeepSpeed or FSDP but the trainer did not shard: stop, rather than train unsharded
    copies. accelerate does this silently for FSDP on CPU processes (it picks FSDP only for GPU-like devices)."""
    from realm_cli.errors import RealmError

    wanted = "DeepSpeed" if deepspeed_launched() else "FSDP" if fsdp_launched() else None
    got = info["strategy"]
    if wanted and info["world_size"] > 1 and not (got.startswith("zero") if wanted == "DeepSpeed" else got == "fsdp2"):
        raise RealmError(f"the launch asked for {wanted}, but the model was wrapped as {got} ({info['engine']}): "
                         f"nothing is sharded" + ("; accelerate runs FSDP only on GPUs" if wanted == "FSDP" else ""))


def _offload_device(offload) -> str:
    device = getattr(offload, "device", None)
    return str(getattr(device, "value", device or "none"))


def _optimizer_numel(trainer) -> int:
    """Elements of the fp32 master/optimizer partition this rank holds (ZeRO-1/2/3: its flat partition; otherwise
    the parameters the optimizer steps)."""
    opt = getattr(trainer, "optimizer", None)
    inner = getattr(opt, "optimizer", opt)  # accelerate's AcceleratedOptimizer
    for attr in ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):  # ZeRO-1/2, ZeRO-3
        groups = getattr(inner, attr, None)
        if groups:
            return int(sum(g.numel() for g in groups))
    if inner is None:
        return 0
    return int(sum(local_numel(p) for g in inner.param_groups for p in g["params"]))


def summary_line(info: dict) -> str:
    shares = ", ".join(f"{s:.0%}" for s in info["param_share_per_rank"])
    return (f"distributed: {info['strategy']} over {info['world_size']} process(es) ({info['backend'] or 'no'} "
            f"backend, {info['engine'].rsplit('.', 1)[-1]}); parameters held per rank: {shares}")


def finish() -> None:
    """The end of a launched job, on every rank: wait for the others, then take the process group down in order.
    A rank that simply exits while a peer still holds the group can abort in gloo's destructor ("terminate called
    without an active exception", exit -6: seen in CI after an FSDP2 run on CPU processes), failing a finished run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
