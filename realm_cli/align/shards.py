"""``realm align`` under several processes (``accelerate launch``, DDP or DeepSpeed ZeRO): each rank samples and
scores its share of the work and every rank ends with the same gathered samples; a ZeRO-3 partitioned policy is
gathered for realm's own forward passes and saves; a finished TRL trainer's DeepSpeed engine lets go of the policy
so the next round's trainer can wrap it again. (How the run is distributed is ``realm_cli.distributed.describe``.)

Why hand-written: TRL's ``unwrap_model_for_generation`` gathers a ZeRO-3 policy only while its trainer's DeepSpeed
engine exists. realm samples (DPO, RS, the held-out report) and measures the KL between TRL trainers, when the
previous round's engine is gone and the parameters are still partitioned, so it gathers them itself with
``deepspeed.zero.GatheredParameters``: every rank then generates from full weights with no collective inside
``generate()``, so ranks whose samples stop at different lengths cannot hang each other.
"""

from __future__ import annotations

import contextlib

from realm_cli import distributed


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def ensure_process_group() -> None:
    """Join the launched process group before the first TRL trainer does, so the base policy's held-out samples can
    already be shared out. torchrun's env:// rendezvous; gloo on a CPU-only machine. accelerate and DeepSpeed reuse a
    group that already exists."""
    import torch
    import torch.distributed as dist

    if distributed.world_size() > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def share(items: list, rank: int, size: int) -> list:
    """This rank's items: every ``size``-th from ``rank`` on (balanced to within one item)."""
    return items[rank::size]


def gather(local: list, size: int) -> list:
    """Every rank's ``share`` put back in the original order (identical on every rank)."""
    if size == 1:
        return list(local)
    import torch.distributed as dist

    parts: list = [None] * size
    dist.all_gather_object(parts, local)
    return interleave(parts)


def interleave(parts: list[list]) -> list:
    """The inverse of ``share`` over all ranks: item i is rank i % size's (i // size)-th."""
    size = len(parts)
    return [parts[i % size][i // size] for i in range(sum(len(p) for p in parts))]


def all_sum(value: float) -> float:
    rank, size = world()
    if size == 1:
        return value
    import torch.distributed as dist

    parts: list = [None] * size
    dist.all_gather_object(parts, value)
    return float(sum(parts))


def is_partitioned(model) -> bool:
    """Whether DeepSpeed ZeRO-3 holds this model's parameters partitioned (the attributes it adds to each)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


@contextlib.contextmanager
def full_weights(model, params=None):
    """The model with its full parameters on every rank (a collective: every rank must enter); a no-op unless
    ZeRO-3 partitioned them. The parameters go back to their shards on exit, changes discarded."""
    if not is_partitioned(model):
        yield model
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters() if params is None else params),
                                           modifier_rank=None):
        yield model


def release(trainer) -> None:
    """After a TRL trainer under DeepSpeed: the engine's hooks removed, so the partitioned policy can run outside it
    (gathered) and the next round's trainer can wrap it again."""
    engine = getattr(trainer, "model_wrapped", None)
    if type(engine).__name__ == "DeepSpeedEngine":
        engine.destroy()
