"""Plain TRL RewardTrainer vs `realm train-rm` on the same model, pairs and hyper-parameters, in one run.

    .venv/bin/python benchmarks/train_rm.py [--pairs 1000] [--batch-size 16] [--epochs 1] [--max-length 256]
        [--trl-defaults-seconds 120]

All sides train all-MiniLM-L6-v2 on the same HH-RLHF helpful-base pairs (../shared/data), the rest held out. The
plain sides are what a TRL user writes: the raw HH transcripts as implicit-prompt pairs, and either
- **TRL defaults**: RewardConfig as it comes (bf16 autocast where the CPU reports bf16 support, gradient
  checkpointing). On a CPU without bf16 units that runs ~30x slower than fp32, so this side stops after
  ``--trl-defaults-seconds`` of training (and at least 3 steps) and its rate is taken over the steps after the first;
  its held-out accuracy is only reported when it ran to the end;
- **TRL by hand**: what a careful user sets for the hardware: bf16 only where the CPU has bf16 units (AMX or
  AVX512-BF16, the same test realm's ``precision: auto`` makes), no gradient checkpointing.
(MiniLM has no EOS token, so ``eos_token="[SEP]"`` is the one setting TRL cannot run without.) Each side runs in its
own process (for a clean peak RSS). Prints pairs trained, pairs/s, peak RSS, held-out accuracy, the ratios, and
realm's achieved FLOP/s against this CPU's matmul rate for the precision realm chose, measured in the same run
(benchmarks/ceiling.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _splits(args):
    """The same train/held-out split realm's loader makes (records carry their file line in ``id``)."""
    from realm_cli.data import load as data
    from realm_cli.config import PluginSpec
    from realm_plugins.datasets.hh_rlhf import HHConfig

    spec = PluginSpec("hh-rlhf", HHConfig(subset="helpful-base"))
    total = len(data.load_source(spec).records)
    cfg = data.DataConfig(train=[spec], validation_split=(total - args.pairs) / total, seed=42)
    return data.load(cfg), cfg.validation_split


def _raw_lines() -> list[dict]:
    from realm_cli.data.load import shared_data_dir

    path = shared_data_dir() / "hh-rlhf" / "helpful-base_test.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _line(record) -> int:
    """1-based line of the record in its file (the hh-rlhf plugin's ``id`` is ``file:line``)."""
    return int(record.id.rsplit(":", 1)[1])


def run_trl(args, tuned: bool) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from realm_cli import models

    class StopAfter(TrainerCallback):
        """Ends training once ``seconds`` of it have passed (and at least 3 steps ran); keeps the time each step
        ended, so the rate can be taken over the steps after the first (warm-up excluded)."""

        def __init__(self, seconds: float | None):
            self.seconds, self.ends, self.t0 = seconds, [], time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())
            if self.seconds and len(self.ends) >= 3 and self.ends[-1] - self.t0 > self.seconds:
                control.should_training_stop = True

    splits, _ = _splits(args)
    raw = _raw_lines()
    rows = [raw[_line(r) - 1] for r in splits.train]
    path = models.local_path("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    # by hand: bf16 only where the CPU has bf16 units, no gradient checkpointing; defaults: RewardConfig's own
    by_hand = {"bf16": models.bf16_supported("cpu"), "gradient_checkpointing": False} if tuned else {}
    stop = StopAfter(None if tuned else args.trl_defaults_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        config = RewardConfig(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                              learning_rate=args.learning_rate, num_train_epochs=args.epochs,
                              max_length=args.max_length, eos_token="[SEP]", report_to="none", save_strategy="no",
                              use_cpu=True, seed=42, disable_tqdm=True, logging_steps=50, **by_hand)
        trainer = RewardTrainer(model=model, args=config, processing_class=tokenizer,
                                train_dataset=datasets.Dataset.from_list(rows), callbacks=[stop])
        kept = len(trainer.train_dataset)
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
        total_steps = trainer.state.max_steps
    steps = len(stop.ends)
    finished = steps >= total_steps
    if finished:
        pairs, rate_seconds = kept * args.epochs, seconds
    else:  # stopped by the time cap: full batches only, rate over the steps after the first
        pairs, rate_seconds = (steps - 1) * args.batch_size, stop.ends[-1] - stop.ends[0]
    accuracy, held = None, splits.validation["held-out"]
    if finished:
        model.eval()
        correct = 0
        with torch.no_grad():
            for r in held:
                row = raw[_line(r) - 1]
                enc = tokenizer([row["chosen"] + "[SEP]", row["rejected"] + "[SEP]"], truncation=True,
                                max_length=args.max_length, padding=True, return_tensors="pt")
                c, j = model(**enc).logits.view(-1).tolist()
                correct += c > j
        accuracy = correct / len(held)
    return {"pairs_offered": len(rows), "pairs_kept": kept, "pairs_trained": steps * args.batch_size
            if not finished else kept * args.epochs, "steps": steps, "total_steps": total_steps,
            "finished": finished, "seconds": seconds, "pairs_per_second": pairs / rate_seconds,
            "held_out_accuracy": accuracy, "held_out_pairs": len(held),
            "precision": "bf16" if config.bf16 else "fp32",
            "gradient_checkpointing": bool(config.gradient_checkpointing)}


def run_realm(args) -> dict:
    from realm_cli.recipes import runner

    _, split = _splits(args)
    with tempfile.TemporaryDirectory() as tmp:
        metrics = runner.run("train-rm", "cpu-minilm", [
            f"output_dir={tmp}/rm", f"data.validation_split={split}",
            f"data.max_length={args.max_length}", f"trainer.per_device_batch_size={args.batch_size}",
            f"trainer.learning_rate={args.learning_rate}", f"trainer.epochs={args.epochs}",
            "trainer.save_steps=100000"])
        flops = _useful_flops(f"{tmp}/rm", args)
    train = metrics["train"]
    return {"pairs_offered": train["pairs"], "pairs_trained": train["pairs"] * args.epochs,
            "seconds": train["seconds"], "pairs_per_second": train["pairs_per_second"],
            "held_out_accuracy": metrics["validation"]["held-out"]["accuracy"],
            "held_out_pairs": metrics["validation"]["held-out"]["pairs"], "precision": train["precision"],
            "other_validation": {k: v["accuracy"] for k, v in metrics["validation"].items() if k != "held-out"},
            "truncated": metrics["data"]["splits"]["train"]["truncated"],
            "dropped": metrics["data"]["splits"]["train"]["dropped"],
            "flop_per_second": flops / train["seconds"] if flops else None}


def _useful_flops(rm_dir: str, args) -> float:
    """Training FLOPs on the non-pad tokens realm fed the model."""
    from ceiling import encoder_flops

    from realm_cli.rewards import rm as reward_model

    splits, _ = _splits(args)
    rm = reward_model.load(rm_dir)
    lengths = [len(rm.format.fit(r.prompt, response).ids) for r in splits.train for response in (r.chosen, r.rejected)]
    return encoder_flops(rm.model, lengths, training=True) * args.epochs


def worker(side: str, args) -> None:
    result = run_realm(args) if side == "realm" else run_trl(args, tuned=side == "trl-tuned")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


SIDES = {"trl-defaults": "TRL defaults", "trl-tuned": "TRL by hand", "realm": "realm train-rm"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--trl-defaults-seconds", type=float, default=120,
                        help="stop the TRL-defaults side after this much training (0: run it to the end)")
    parser.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return worker(args.side, args)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    import torch
    from ceiling import describe_cpu, matmul_tflops


    torch.set_num_threads(os.cpu_count() or 1)
    ceiling = {dtype: matmul_tflops(dtype) for dtype in ("bfloat16", "float32")}
    console.print(f"this CPU, measured now: bf16 matmul {ceiling['bfloat16']:.2f} TFLOP/s, fp32 "
                  f"{ceiling['float32']:.2f} TFLOP/s ({os.cpu_count()} threads); {describe_cpu()}", highlight=False)
    results = {"matmul_tflops": ceiling, "cpu": describe_cpu()}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for side in SIDES:
        console.print(f"[bold]running {SIDES[side]}[/bold] (load average {os.getloadavg()[0]:.1f} on "
                      f"{os.cpu_count()} cores)")
        cmd = [sys.executable, __file__, "--side", side, "--pairs", str(args.pairs), "--batch-size",
               str(args.batch_size), "--learning-rate", str(args.learning_rate), "--epochs", str(args.epochs),
               "--max-length", str(args.max_length), "--trl-defaults-seconds", str(args.trl_defaults_seconds)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            console.print(out.stderr[-4000:])
            raise SystemExit(f"{side} run failed")
        results[side] = json.loads(line[len("RESULT "):])

    realm = results["realm"]
    trls = [results["trl-defaults"], results["trl-tuned"]]
    table = Table(title=f"train-rm benchmark: all-MiniLM-L6-v2, {args.pairs} HH helpful-base pairs, bs "
                        f"{args.batch_size}, lr {args.learning_rate}, {args.epochs} epoch(s), max_length "
                        f"{args.max_length}")
    for col in ("", *SIDES.values(), "realm / TRL defaults", "realm / TRL by hand"):
        table.add_column(col, justify="right")

    def trl_pairs(t: dict) -> str:
        dropped = t["pairs_offered"] - t["pairs_kept"]
        done = "" if t["finished"] else f", stopped after {t['steps']}/{t['total_steps']} steps"
        return f"{t['pairs_trained']} ({dropped} dropped for length{done})"

    table.add_row("pairs trained", *map(trl_pairs, trls),
                  f"{realm['pairs_trained']} ({realm['dropped']} dropped, {realm['truncated']} truncated)", "", "")
    table.add_row("precision", *(t["precision"] + (" + grad ckpt" if t["gradient_checkpointing"] else "")
                                 for t in trls), realm["precision"], "", "")
    table.add_row("train seconds", *(f"{t['seconds']:.1f}" for t in (*trls, realm)), "", "")
    table.add_row("pairs/s", *(f"{t['pairs_per_second']:.2f}" for t in (*trls, realm)),
                  *(f"{realm['pairs_per_second'] / t['pairs_per_second']:.2f}x" for t in trls))
    table.add_row("peak RSS (MB)", *(f"{t['peak_rss_mb']:.0f}" for t in (*trls, realm)),
                  *(f"{realm['peak_rss_mb'] / t['peak_rss_mb']:.2f}x" for t in trls))
    table.add_row(f"held-out accuracy ({realm['held_out_pairs']} pairs)",
                  *("(stopped)" if t["held_out_accuracy"] is None else f"{t['held_out_accuracy']:.3f}"
                    for t in trls), f"{realm['held_out_accuracy']:.3f}",
                  *("" if t["held_out_accuracy"] is None
                    else f"{realm['held_out_accuracy'] - t['held_out_accuracy']:+.3f}"
                    for t in trls))
    for name, accuracy in realm["other_validation"].items():
        table.add_row(f"{name} accuracy (realm recipe's extra set)", "", "", f"{accuracy:.3f}", "", "")
    if realm.get("flop_per_second"):
        rate = ceiling["bfloat16" if realm["precision"] == "bf16" else "float32"]
        table.add_row("realm useful FLOP/s", "", "", f"{realm['flop_per_second'] / 1e12:.3f} T",
                      f"{realm['flop_per_second'] / 1e12 / rate:.0%} of the measured {realm['precision']} matmul rate",
                      "")
    console.print(table)
    console.print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
                  "(timings are only comparable within one run)", highlight=False)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
