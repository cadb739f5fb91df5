"""What ``train-rm`` settles before any model or data is loaded: that the recipe can run on this machine, the
precision, whether bf16 runs on fp32 master weights, and the checkpoint ``--resume`` continues from."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from realm_cli.errors import RealmError


def resolve_precision(precision: str, device: str) -> str:
    """auto -> bf16 where the hardware is fast at it, fp16 on older GPUs, else fp32. fp16 needs a GPU."""
    from realm_cli.models import bf16_supported

    if precision == "auto":
        if bf16_supported(device):
            return "bf16"
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and not device.startswith("cuda"):
        raise RealmError("trainer.precision=fp16 needs a CUDA GPU (loss scaling is a GPU feature); "
                         "use precision=bf16 or auto on CPU")
    if precision == "bf16" and device.startswith("cuda") and not bf16_supported(device):
        raise RealmError("trainer.precision=bf16: this GPU does not support bf16; use fp16")
    return precision


def _cpu_bf16_units() -> str | None:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else None


def describe_precision(asked: str, precision: str, device: str, master: bool,
                       bf16_base: bool = False) -> tuple[str, str]:
    """What ``train-rm`` computes in and why, for the line printed at the start of a run and for metrics.json:
    (``bf16 weights + fp32 master copies``, ``AVX512-BF16 CPU``) and the like."""
    from realm_cli.models import bf16_supported

    gpu = device.startswith("cuda")
    if gpu:
        mode = {"bf16": "bf16 mixed precision (fp32 weights)", "fp16": "fp16 mixed precision (fp32 weights, loss "
                "scaling)", "fp32": "fp32"}[precision]
    elif precision == "bf16":
        mode = "bf16 weights + fp32 master copies" if master else \
            "bf16 frozen base + fp32 LoRA adapters and head, autocast" if bf16_base else "bf16 autocast over fp32 weights"
    else:
        mode = "fp32"
    if asked != "auto":
        reason = f"trainer.precision={asked}"
        if precision == "bf16" and not gpu and not bf16_supported(device):
            reason += "; this CPU has no bf16 units, so it is emulated and slow"
    elif gpu:
        reason = "this GPU supports bf16" if precision == "bf16" else "this GPU has no bf16"
    elif precision == "bf16":
        reason = f"{_cpu_bf16_units() or 'bf16-capable'} CPU"
    else:
        reason = "this CPU has no bf16 units: no AMX, no AVX512-BF16"
    return mode, reason


def last_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint (trainer_state.json is written last, so a kill mid-save leaves none). Its
    trainer_state.json must parse: a corrupt one is a one-line error here, not a traceback from deep in HF."""
    done = [p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    last = max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)
    if last is not None:
        state = last / "trainer_state.json"
        try:
            json.loads(state.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise RealmError(f"{state}: not valid JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                             f"); delete that checkpoint or start without --resume") from None
    return last


def preflight(recipe, cfg, device: str) -> None:
    """Reject what cannot work on this machine before any model or data is loaded."""
    if recipe.model is None:
        raise RealmError(f"recipe {recipe.name!r}: model: required for train-rm")
    if recipe.data is None or not recipe.data.train:
        raise RealmError(f"recipe {recipe.name!r}: data.train: at least one dataset required for train-rm")
    from realm_cli.recipes.launch import runs_on_cpu

    if not device.startswith("cuda") and not runs_on_cpu(recipe.launch):
        raise RealmError(f"recipe {recipe.name!r} targets a GPU (launch.accelerate_config="
                         f"{recipe.launch.accelerate_config}) and this machine has none; run a cpu recipe "
                         f"(cpu-minilm, cpu-smollm2-lora) or set launch.accelerate_config=cpu "
                         f"(deepspeed_cpu for a DeepSpeed recipe)")
    lora = recipe.model.lora
    if lora is not None and lora.quantization != "none":
        if not device.startswith("cuda"):
            raise RealmError(f"model.lora.quantization={lora.quantization} (QLoRA) needs a CUDA GPU; "
                             f"this machine has none (set model.lora.quantization=none)")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise RealmError("model.lora.quantization needs bitsandbytes: pip install bitsandbytes")
    if recipe.launch.deepspeed_config is not None and importlib.util.find_spec("deepspeed") is None:
        raise RealmError("launch.deepspeed_config needs DeepSpeed: pip install 'realm-cli[deepspeed]'")


def uses_master_weights(recipe, precision: str, device: str) -> bool:
    """bf16 on a CPU, full fine-tuning, default dtype: train bf16 weights with fp32 master copies in the optimizer
    (``realm_cli.train.master_weights``) instead of autocast over fp32 weights. LoRA keeps autocast: its trainable
    adapters are small and already fp32."""
    return (precision == "bf16" and not device.startswith("cuda") and recipe.model.lora is None
            and recipe.model.dtype == "auto" and recipe.launch.deepspeed_config is None)


def uses_bf16_base(recipe, precision: str, device: str) -> bool:
    """bf16 on a CPU with (unquantized) LoRA, default dtype: the frozen base is loaded in bf16 and only the adapters
    and the score head stay fp32 (they train). Under autocast over an fp32 base every norm, softmax and residual add
    runs in fp32 with a cast on each side of every matmul; a bf16 base runs them in bf16 (measured on SmolLM2-135M,
    LoRA r16 on q/k/v/o, 4 x 384 tokens, forward + backward: 6.7 s fp32 base vs 4.2 s bf16 base, AVX512-BF16).
    The base never updates, so nothing is lost to bf16 rounding but the base's own (as in QLoRA, at 16 bits)."""
    lora = recipe.model.lora
    return (precision == "bf16" and not device.startswith("cuda") and lora is not None
            and lora.quantization == "none" and recipe.model.dtype == "auto"
            and recipe.launch.deepspeed_config is None)
