"""TEST-ONLY SHIM: force accelerate to run FSDP on CPU processes, so the FSDP2 path of train-rm (the
``gemma7b-4xa100`` recipe's) can run for real in ``make test``. Never imported by product code: the FSDP test puts
this folder on PYTHONPATH of the processes it launches, and Python imports ``sitecustomize`` at start-up.

Why it is needed: accelerate turns ``ACCELERATE_USE_FSDP=true`` into ``DistributedType.FSDP`` only for GPU-like
distributed types (MULTI_GPU, MULTI_XPU, ...). On a CPU the state stays MULTI_CPU, FSDP silently does not happen,
and both ranks train unsharded copies (plain DDP). FSDP2's ``fully_shard`` itself works on CPU tensors over gloo;
only accelerate's gate is in the way. The shim lifts the gate after AcceleratorState is built, exactly where
accelerate would have set it on a GPU."""

import os


def _install() -> None:
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return
    from accelerate import state as accelerate_state
    from accelerate.utils import DistributedType

    original = accelerate_state.AcceleratorState.__init__

    def __init__(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU and fsdp_plugin is not None:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            # Every later AcceleratorState() copies PartialState's fields over its own: keep the two in step, as
            # accelerate itself does when it picks FSDP.
            accelerate_state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    accelerate_state.AcceleratorState.__init__ = __init__


_install()
