"""Scoring HH-RLHF helpful-base test pairs (default the first 1,000, 2,000 responses; ``--pairs 0``: all 2,339 kept)
with a realm-trained MiniLM reward model: realm's `bt` reward (length-sorted batches, no grad, bf16 weights where the
CPU has AMX/AVX512-BF16) vs the naive one-pair-at-a-time loop of seed 004's ``compute_rewards`` (timed on the first
``--naive-limit`` responses, extrapolated) vs a plain batched fp32 loop. All three feed the model the same token ids
(realm's RM formatting), so their scores must agree to bf16 tolerance.

    .venv/bin/python benchmarks/score.py [--model RUN_DIR] [--pairs 1000] [--naive-limit 400] [--batch-size 32]

The model defaults to the demo's RM (runs/cpu-minilm, `make demo`), else the one benchmarks/rm_transfer.py trains on
helpful-base (runs/rm-transfer/helpful-base; `make bench` runs that one first).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


DEFAULT_MODELS = ("runs/cpu-minilm", "runs/rm-transfer/helpful-base")


def hh_pairs():
    from realm_cli.config import PluginSpec
    from realm_cli.data.load import load_source

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "helpful-base_test.jsonl.gz"
    return load_source(PluginSpec("hh-rlhf", {"path": str(path)})).records


def naive_loop(model, seqs):
    """Seed 004's compute_rewards: one sequence per forward pass, fp32, ``.item()`` each."""
    import torch

    out = []
    for ids in seqs:
        with torch.no_grad():
            out.append(model(input_ids=torch.tensor([ids])).logits.item())
    return out


def plain_batched(model, seqs, pad_id, batch_size):
    """The usual batched loop: input order, pad to the longest in each batch, fp32."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(seqs), batch_size):
            chunk = seqs[start:start + batch_size]
            width = max(map(len, chunk))
            ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in chunk])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in chunk])
            out.extend(model(input_ids=ids, attention_mask=mask).logits[:, 0].tolist())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a realm train-rm output directory (default: see above)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--naive-limit", type=int, default=400, help="time the naive loop on the first N only (0: all)")
    parser.add_argument("--pairs", type=int, default=1000, help="the first N pairs (0: all)")
    args = parser.parse_args()
    found = [d for d in DEFAULT_MODELS if Path(d, "realm_rm.json").is_file()]
    args.model = args.model or (found or DEFAULT_MODELS)[0]
    if not Path(args.model, "realm_rm.json").is_file():
        sys.exit(f"{args.model} is not a realm-trained RM: run `make demo` (or `realm train-rm --recipe cpu-minilm`) "
                 "first, or pass --model RUN_DIR")

    import torch
    from ceiling import describe_cpu, encoder_flops, matmul_tflops

    from realm_cli import models
    from realm_cli.rewards.build import build_reward
    from realm_cli.rewards.options import spec_from_cli

    records = hh_pairs()[: args.pairs or None]
    prompts = [r.prompt for r in records] * 2
    responses = [r.chosen for r in records] + [r.rejected for r in records]
    console = Console(stderr=True)
    console.print(f"{describe_cpu()}, {torch.get_num_threads()} threads; {len(records)} pairs, {args.model}",
                  highlight=False)

    reward = build_reward(spec_from_cli("bt", [f"reward.model={args.model}", f"reward.batch_size={args.batch_size}"]))
    reward.score(prompts[:64], responses[:64])  # load + warm-up
    t = time.perf_counter()
    realm = reward.score(prompts, responses)
    realm_s = time.perf_counter() - t
    console.print(f"realm bt reward: {realm_s:.1f} s", highlight=False)
    rm = reward.rm
    realm_dtype = str(next(rm.model.parameters()).dtype).removeprefix("torch.")
    seqs = [rm.format.encode(p, r)[0] for p, r in zip(prompts, responses)]
    model = rm.model.float().eval()

    t = time.perf_counter()
    plain = plain_batched(model, seqs, rm.tokenizer.pad_token_id, args.batch_size)
    plain_s = time.perf_counter() - t
    console.print(f"plain batched fp32: {plain_s:.1f} s", highlight=False)

    n_naive = min(len(seqs), args.naive_limit or len(seqs))
    t = time.perf_counter()
    naive = naive_loop(model, seqs[:n_naive])
    naive_s = (time.perf_counter() - t) * len(seqs) / n_naive  # extrapolated when --naive-limit is set

    flops = encoder_flops(model, [len(s) for s in seqs], training=False)
    peak = matmul_tflops(realm_dtype) * 1e12  # the rate of the dtype realm scored in
    diff_plain = max(abs(a - b) for a, b in zip(realm, plain))
    diff_naive = max(abs(a - b) for a, b in zip(naive, plain[:n_naive]))
    scale = max(abs(x) for x in plain)
    result = {
        "pairs": len(records), "responses": len(seqs), "model": args.model, "batch_size": args.batch_size,
        "bf16": models.bf16_supported("cpu"), "threads": torch.get_num_threads(),
        "realm_s": round(realm_s, 2), "plain_batched_fp32_s": round(plain_s, 2), "naive_s": round(naive_s, 2),
        "naive_timed_on": n_naive, "speedup_vs_naive": round(naive_s / realm_s, 2),
        "speedup_vs_plain_batched": round(plain_s / realm_s, 2),
        "max_abs_diff_realm_vs_fp32": round(diff_plain, 4), "max_abs_diff_naive_vs_batched_fp32": round(diff_naive, 6),
        "score_scale": round(scale, 3),
        "cpu": describe_cpu(), "realm_dtype": realm_dtype, "matmul_tflops_measured": round(peak / 1e12, 3),
        "realm_share_of_matmul_rate": round(flops / realm_s / peak, 3),
        # no loop can beat the matmul rate: the largest speedup over the naive loop this CPU allows
        "speedup_vs_naive_bound": round(naive_s / (flops / peak), 1),
        "pairwise_accuracy": {"realm": sum(realm[i] > realm[i + len(records)] for i in range(len(records))) / len(records),
                              "fp32": sum(plain[i] > plain[i + len(records)] for i in range(len(records))) / len(records)},
    }
    result["targets"] = {"vs_plain_batched>=3": result["speedup_vs_plain_batched"] >= 3,
                         "share_of_matmul_rate>=0.7": result["realm_share_of_matmul_rate"] >= 0.7,
                         # bf16 keeps ~3 significant digits: differences within 2% of the score range
                         "same_scores_bf16_tolerance": diff_plain <= 0.02 * max(1.0, scale)}
    table = Table(title=f"scoring {len(seqs)} HH helpful-base test responses with {args.model}")
    for col in ("loop", "seconds", "responses/s", "realm speedup"):
        table.add_column(col, justify="left" if col == "loop" else "right")
    table.add_row("naive one-at-a-time (seed 004)" + ("" if n_naive == len(seqs) else f" [{n_naive} timed]"),
                  f"{naive_s:.1f}", f"{len(seqs) / naive_s:.1f}", f"{result['speedup_vs_naive']}x")
    table.add_row(f"plain batched fp32 (bs {args.batch_size})", f"{plain_s:.1f}", f"{len(seqs) / plain_s:.1f}",
                  f"{result['speedup_vs_plain_batched']}x")
    table.add_row("realm bt reward", f"{realm_s:.1f}", f"{len(seqs) / realm_s:.1f}", "1x")
    console.print(table)
    console.print(f"realm runs at {result['realm_share_of_matmul_rate']:.0%} of this CPU's measured {realm_dtype} "
                  f"matmul rate ({peak / 1e12:.2f} TFLOP/s); at 100% the speedup over the naive loop would be "
                  f"{result['speedup_vs_naive_bound']}x", highlight=False)
    console.print(f"max |realm - fp32| = {diff_plain:.4f} (scores span ±{scale:.2f}); pairwise accuracy realm "
                  f"{result['pairwise_accuracy']['realm']:.4f} vs fp32 {result['pairwise_accuracy']['fp32']:.4f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
