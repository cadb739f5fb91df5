"""What this CPU is and can do, measured in the benchmark's own run rather than assumed: its class (model, the bf16
units realm's precision choice looks for, cores), bf16 and fp32 matmul TFLOP/s at transformer-layer shapes, and the
useful FLOPs of an encoder pass over given sequence lengths."""

from __future__ import annotations

import os
import time
from pathlib import Path

SHAPES = ((4096, 384, 1536), (4096, 1536, 384), (2048, 2048, 2048))  # MiniLM MLP in/out, one square


def cpu_class() -> dict:
    """What the numbers were measured on: model name, the bf16 units realm's precision choice looks for, cores."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "unknown")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    return {"model": model, "cores": os.cpu_count(), "amx_bf16": "amx_bf16" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "avx2": "avx2" in flags}


def describe_cpu(cpu: dict | None = None) -> str:
    cpu = cpu or cpu_class()
    units = "AMX" if cpu["amx_bf16"] else "AVX512-BF16" if cpu["avx512_bf16"] else "no bf16 units (AVX2 only)" \
        if cpu["avx2"] else "no bf16 units"
    return f"CPU: {cpu['model']}, {cpu['cores']} cores, {units}"


def matmul_tflops(dtype: str, seconds: float = 1.0) -> float:
    """Best sustained matmul rate over SHAPES with torch's current thread count."""
    import torch

    dt = getattr(torch, dtype)
    best = 0.0
    for m, k, n in SHAPES:
        a, b = torch.randn(m, k, dtype=dt), torch.randn(k, n, dtype=dt)
        a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / len(SHAPES):
            a @ b
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t0) / 1e12)
    return best


def encoder_flops(model, lengths, *, training: bool) -> float:
    """FLOPs on the non-pad tokens: 2 (forward) or 6 (forward + backward) x non-embedding params per token, plus the
    attention score/value products (4 x layers x width x T^2 per sequence forward, x3 for training)."""
    cfg = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    per_param, attn = (6, 12) if training else (2, 4)
    return sum(per_param * params * t + attn * cfg.num_hidden_layers * cfg.hidden_size * t * t for t in lengths)
