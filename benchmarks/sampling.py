"""Sampling ``k`` responses to HH-RLHF helpful-base prompts from SmolLM2-135M-Instruct, loaded and autocast as
``realm align`` does: plain ``model.generate`` over the jobs in input order vs realm's ``sample`` (length-sorted
batches, rows dropped from the batch at their EOS), at the same batch size, temperature and top-p, in one run.

    .venv/bin/python benchmarks/sampling.py [--prompts 32] [--k 2] [--max-new-tokens 64] [--batch-size 16]
        [--lora 16] [--levers] [--batch-sizes 32,64] [--json out.json]

Throughput is generated tokens (up to and including EOS) per second. The share of the matmul ceiling counts the
useful FLOPs, 2 x parameters x (prompt tokens without padding + generated tokens), against the matmul rate
measured in this run (benchmarks/ceiling.py) in the dtype the sampling computes in. ``--levers`` also times each
change alone (sorted batches with plain generate; the hand decode loop in input order; realm's sampler without its
bf16 copy of the weights, i.e. under autocast over the fp32 weights); ``--batch-sizes`` times realm's sampler at
other batch sizes too. ``--lora R`` samples from the model wrapped in a fresh rank-R LoRA adapter on q/k/v/o, as a
LoRA align recipe's policy is (its frozen base is where autocast re-casts the most).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def prompts(n: int):
    from score import hh_pairs

    return [r.prompt for r in hh_pairs()[:n]]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    # 32 x k=2 keeps the default run under 3 minutes on 2 shared cores
    parser.add_argument("--prompts", type=int, default=32, help="the first N HH helpful-base test prompts")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="default: realm's Sampling().batch_size")
    parser.add_argument("--batch-sizes", default="", help="comma-separated: also time realm's sampler at these")
    parser.add_argument("--levers", action="store_true", help="also time each of realm's changes alone")
    parser.add_argument("--lora", type=int, default=0, help="wrap the policy in a LoRA adapter of this rank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    import torch
    from ceiling import cpu_class, describe_cpu, matmul_tflops

    from realm_cli import models
    from realm_cli.align import policy, sampling
    from realm_cli.recipes.recipe import ModelConfig

    console = Console(stderr=True)
    cfg = ModelConfig(name=args.model)
    tokenizer = policy.load_tokenizer(cfg)
    model = policy.load_model(cfg, tokenizer).eval()
    if args.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=args.lora, lora_alpha=2 * args.lora, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])).eval()
    bf16 = models.bf16_supported(policy.device())
    autocast = lambda: models.autocast(policy.device(), "auto")  # noqa: E731 - realm align's default (bf16: true)
    settings = sampling.Sampling(max_new_tokens=args.max_new_tokens,
                                 **({"batch_size": args.batch_size} if args.batch_size else {}))
    chats = prompts(args.prompts)
    templated = sampling.templated_ids(tokenizer, chats, settings)
    queries = [templated[i] for i in range(len(chats)) for _ in range(args.k)]
    options = sampling.generate_options(tokenizer, sampling._eos_ids(model, tokenizer), settings, greedy=False)
    lengths = sorted(map(len, templated))
    console.print(f"{describe_cpu()}, {torch.get_num_threads()} threads, load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {len(chats)} prompts x k={args.k}, "
                  f"{lengths[0]}-{lengths[-1]} tokens (median {lengths[len(lengths) // 2]}), "
                  f"{'bf16 autocast' if bf16 else 'fp32'}{f', LoRA r{args.lora}' if args.lora else ''}",
                  highlight=False)

    def loop(order, decode, batch_size=settings.batch_size):
        torch.manual_seed(args.seed)
        with torch.no_grad(), autocast():
            return sampling.in_batches(model, queries, order, batch_size, decode, options)

    def realm(batch_size, bf16_copy=True):
        run = sampling.Sampling(**{**vars(settings), "batch_size": batch_size})
        wants = sampling._wants_bf16_copy
        if not bf16_copy:
            sampling._wants_bf16_copy = lambda model: False
        try:
            return sampling.sample(model, tokenizer, chats, k=args.k, settings=run, seed=args.seed,
                                   autocast=autocast()).response_ids
        finally:
            sampling._wants_bf16_copy = wants

    warm_up = sampling.Sampling(max_new_tokens=4)  # first-call costs (allocator, kernels) out of the timings
    sampling.sample(model, tokenizer, chats[:2], settings=warm_up, autocast=autocast())
    in_order = list(range(len(queries)))
    by_length = sorted(in_order, key=lambda j: len(queries[j]))
    runs = {f"plain generate, input order (bs {settings.batch_size})":
            lambda: loop(in_order, sampling.generate_batch)}
    if args.levers:
        runs[f"plain generate, length-sorted (bs {settings.batch_size})"] = \
            lambda: loop(by_length, sampling.generate_batch)
        runs[f"hand decode loop, input order (bs {settings.batch_size})"] = \
            lambda: loop(in_order, sampling.decode_batch)
        if bf16:
            runs[f"realm sample, autocast over fp32 weights (bs {settings.batch_size})"] = \
                lambda: realm(settings.batch_size, bf16_copy=False)
    for bs in [settings.batch_size] + [int(b) for b in args.batch_sizes.split(",") if b]:
        runs[f"realm sample (bs {bs})"] = lambda bs=bs: realm(bs)

    params = sum(p.numel() for p in model.parameters())
    peak = matmul_tflops("bfloat16" if bf16 else "float32") * 1e12
    rows = []
    for name, fn in runs.items():
        responses, seconds = timed(fn)
        generated = sum(map(len, responses))
        rows.append({"run": name, "seconds": round(seconds, 2), "generated_tokens": generated,
                     "tokens_per_s": round(generated / seconds, 1),
                     "share_of_matmul_ceiling": round(2 * params * (sum(map(len, queries)) + generated)
                                                      / seconds / peak, 4)})
        console.print(f"{name}: {seconds:.1f} s", highlight=False)
    base = rows[0]["tokens_per_s"]
    for row in rows:
        row["vs_plain"] = round(row["tokens_per_s"] / base, 2)

    table = Table(title=f"sampling {len(queries)} responses, up to {args.max_new_tokens} tokens, {args.model}, "
                        f"T={settings.temperature} top-p={settings.top_p}")
    for col in ("run", "seconds", "tokens", "tokens/s", "vs plain", "matmul ceiling"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for row in rows:
        table.add_row(row["run"], f"{row['seconds']:.1f}", str(row["generated_tokens"]), f"{row['tokens_per_s']:.1f}",
                      f"{row['vs_plain']}x", f"{row['share_of_matmul_ceiling']:.1%}")
    console.print(table)
    console.print(f"matmul ceiling measured in this run: {peak / 1e12:.2f} TFLOP/s "
                  f"({'bf16' if bf16 else 'fp32'}); load average after {os.getloadavg()[0]:.1f}", highlight=False)
    result = {"cpu": cpu_class(), "threads": torch.get_num_threads(), "model": args.model,
              "lora_rank": args.lora, "prompts": len(chats), "k": args.k, "max_new_tokens": args.max_new_tokens, "bf16_autocast": bf16,
              "prompt_tokens": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]},
              "matmul_tflops_measured": round(peak / 1e12, 3), "runs": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
