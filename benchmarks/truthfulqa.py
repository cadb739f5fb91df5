"""TruthfulQA v1 MC1/MC2 of SmolLM2-135M-Instruct: `realm eval truthfulqa` (primer KV cache, batched choices) vs
lm-evaluation-harness 0.4.13 itself (HFLM at its default batch size 1), fp32, on the same questions, each run as a
whole process timed from start to exit (imports and model load included), one after the other in this run. Prints
the time ratio, both sides' MC1/MC2, the per-question differences, the share of the FLOP floor realm reaches and the
CPU class.

    .venv/bin/python benchmarks/truthfulqa.py [--limit 100] [--threads T] [--model smollm2-135m-instruct] [--bos B]

lm-eval runs offline: task yamls that ``include:`` its packaged truthfulqa_mc1/mc2.yaml read a JSONL of the same
questions (only these two tasks are indexed, which spares lm-eval ~10 s of start-up its CLI would spend). The FLOP
floor is the work no implementation can avoid: every token that must pass through the model (the primer once, each
question's own tokens, each distinct choice's tokens but its last) x 2 x parameters, at the fp32 matmul rate
measured in this run (benchmarks/ceiling.py); attention is left out, so the floor is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MC_TASK = REPO.parent / "shared" / "data" / "truthfulqa" / "v1" / "mc_task.json"


def write_inputs(limit: int | None, where: Path) -> tuple[Path, Path, list[dict]]:
    """The first ``limit`` v1 questions as a hub-schema JSONL, and lm-eval task yamls reading it."""
    import lm_eval

    data = json.loads(MC_TASK.read_text())[:limit]
    rows = [{"question": q["question"], **{k: {"choices": list(q[k]), "labels": list(q[k].values())}
                                           for k in ("mc1_targets", "mc2_targets")}} for q in data]
    jsonl = where / "questions.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    packaged = Path(lm_eval.__file__).parent / "tasks" / "truthfulqa"
    tasks = where / "tasks"
    tasks.mkdir()
    for mc in ("mc1", "mc2"):
        (tasks / f"bench_truthfulqa_{mc}.yaml").write_text(
            f"include: {packaged / f'truthfulqa_{mc}.yaml'}\ntask: bench_truthfulqa_{mc}\ndataset_path: json\n"
            f"dataset_name: null\ndataset_kwargs:\n  data_files:\n    validation: {jsonl}\n"
            f"  cache_dir: {where / 'hf-datasets'}\n")
    return jsonl, tasks, rows


def lm_eval_child(args) -> None:
    """Runs in its own process: lm-eval's HFLM + simple_evaluate, per-question results to --out."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    kwargs = {} if args.bos == "tokenizer" else {"add_bos_token": args.bos == "true"}
    t = time.perf_counter()
    lm = HFLM(pretrained=args.model_dir, device="cpu", dtype="float32", batch_size=args.lm_eval_batch_size, **kwargs)
    names = ["bench_truthfulqa_mc1", "bench_truthfulqa_mc2"]
    res = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=TaskManager(include_path=args.tasks,
                                                                                  include_defaults=False),
                                  log_samples=True, bootstrap_iters=0)
    rows: dict[int, dict] = {}
    for mc, name in zip(("mc1", "mc2"), names):
        for s in res["samples"][name]:
            row = rows.setdefault(s["doc_id"], {"lls": {}})
            row[mc] = float(s["acc"])
            row["lls"].update({cont[1:]: float(r[0][0]) for (_, cont), r in zip(s["arguments"], s["resps"])})
    tokens = sum(len(c) + len(k) - 1 for name in names for s in res["samples"][name] for c, k in
                 [lm._encode_pair(*a) for a in s["arguments"]])  # what its one forward per request feeds
    Path(args.out).write_text(json.dumps({
        "version": lm_eval.__version__, "versions": res["versions"], "evaluate_s": time.perf_counter() - t,
        "threads": __import__("torch").get_num_threads(), "tokens_processed": tokens,
        "per_question": [rows[i] for i in sorted(rows)]}))


def timed(cmd: list[str], env: dict, log: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one whole child process."""
    with log.open("w") as fh:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{tail}")
    return seconds, usage.ru_maxrss / 1024 ** 2


def floor_tokens(model_dir: str, rows: list[dict], bos: str) -> int:
    """Tokens that must go through the model: the primer once, each question's tokens after it, and each distinct
    choice's tokens except the last (whose prediction nobody needs)."""
    from realm_cli.evaluate import truthfulqa as tqa
    from realm_cli.evaluate.loglik import encode_pair, load_tokenizer, tok_encode

    b = {"tokenizer": "tokenizer", "true": True, "false": False}[bos]
    tok = load_tokenizer(model_dir, b)
    primer = len(tok_encode(tok, tqa.QA_PRIMER, b))
    total = primer
    for row in rows:
        choices = dict.fromkeys([*row["mc1_targets"]["choices"], *row["mc2_targets"]["choices"]])
        pairs = [encode_pair(tok, tqa.context(row["question"]), tqa.continuation(c), b) for c in choices]
        total += len(pairs[0][0]) - primer + sum(len(k) - 1 for _, k in pairs)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="realm model alias, path or hub id")
    parser.add_argument("--limit", type=int, default=100,
                        help="the first N v1 questions (default 100, which keeps `make bench` within its time; lm-eval "
                             "takes ~35 minutes for all 817 on 2 cores; 0: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of both sides (default: torch's)")
    parser.add_argument("--bos", choices=("tokenizer", "true", "false"), default="tokenizer")
    parser.add_argument("--lm-eval-batch-size", type=int, default=1, help="HFLM batch size (its default: 1)")
    parser.add_argument("--lm-eval-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lm_eval_child:
        return lm_eval_child(args)
    if not MC_TASK.is_file():
        sys.exit(f"{MC_TASK} not found (TruthfulQA v1 in ../shared/data)")
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        sys.exit('lm-eval is not installed: .venv/bin/pip install -c constraints.txt "lm-eval[hf]==0.4.13"')

    import torch
    from ceiling import cpu_class, describe_cpu, matmul_tflops
    from rich.console import Console
    from rich.table import Table

    from realm_cli import models

    console = Console(stderr=True)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    model_dir = models.local_path(args.model)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="realm-bench-tqa-") as tmp:
        tmp = Path(tmp)
        jsonl, tasks, rows = write_inputs(args.limit or None, tmp)
        n = len(rows)
        console.print(f"{n} TruthfulQA v1 questions, {args.model}, fp32, {threads} threads, bos={args.bos}",
                      highlight=False)
        realm_cmd = [sys.executable, "-m", "realm_cli.cli", "eval", "truthfulqa", "--models", model_dir,
                     "--dtype", "float32", f"data.path={jsonl}", f"bos={args.bos}", "-o", str(tmp / "realm")]
        realm_s, realm_gb = timed(realm_cmd, env, tmp / "realm.log")
        console.print(f"realm: {realm_s:.1f} s", highlight=False)
        lm_cmd = [sys.executable, __file__, "--lm-eval-child", "--model-dir", model_dir, "--tasks", str(tasks),
                  "--out", str(tmp / "lm_eval.json"), "--bos", args.bos,
                  "--lm-eval-batch-size", str(args.lm_eval_batch_size)]
        lm_s, lm_gb = timed(lm_cmd, env, tmp / "lm_eval.log")
        console.print(f"lm-eval: {lm_s:.1f} s", highlight=False)
        detail = json.loads((tmp / "realm" / "truthfulqa.json").read_text())
        harness = json.loads((tmp / "lm_eval.json").read_text())
        tokens = floor_tokens(model_dir, rows, args.bos)

    mine = detail["per_question"][model_dir]
    theirs = harness["per_question"]
    d_mc1 = max(abs(a["mc1"] - b["mc1"]) for a, b in zip(mine, theirs))
    d_mc2 = max(abs(a["mc2"] - b["mc2"]) for a, b in zip(mine, theirs))
    d_ll = max(abs(a["loglikelihoods"][c] - b["lls"][c]) for a, b in zip(mine, theirs) for c in b["lls"])
    mc1_flips = sum(a["mc1"] != b["mc1"] for a, b in zip(mine, theirs))
    model = models.load_causal_lm(model_dir, dtype="float32")
    params = sum(p.numel() for p in model.parameters())
    fp32_rate = matmul_tflops("float32") * 1e12
    floor_s = tokens * 2 * params / fp32_rate
    score_s = detail["seconds"][model_dir]["score_s"]
    result = {
        "questions": n, "model": args.model, "params": params, "dtype": "float32", "bos": args.bos,
        "bos_added": detail["models"][model_dir]["bos_added"], "threads": threads, "cpu": cpu_class(),
        "lm_eval_version": harness["version"], "lm_eval_batch_size": args.lm_eval_batch_size,
        "protocol": detail["protocol"],
        "realm_s": round(realm_s, 2), "lm_eval_s": round(lm_s, 2), "speedup": round(lm_s / realm_s, 2),
        "realm_scoring_s": score_s, "lm_eval_evaluate_s": round(harness["evaluate_s"], 2),
        "realm_peak_rss_gb": round(realm_gb, 2), "lm_eval_peak_rss_gb": round(lm_gb, 2),
        "realm": {k: detail["models"][model_dir][k] for k in ("mc1", "mc2")},
        "lm_eval": {k: sum(q[k] for q in theirs) / len(theirs) for k in ("mc1", "mc2")},
        "max_abs_diff_mc1_per_question": d_mc1, "mc1_questions_differing": mc1_flips,
        "max_abs_diff_mc2_per_question": d_mc2, "max_abs_diff_loglikelihood_per_choice": d_ll,
        "floor_tokens": tokens, "lm_eval_tokens_processed": harness["tokens_processed"],
        "fp32_matmul_tflops_measured": round(fp32_rate / 1e12, 3), "flop_floor_s": round(floor_s, 2),
        "realm_share_of_flop_floor": round(floor_s / realm_s, 3),
        "realm_scoring_share_of_flop_floor": round(floor_s / score_s, 3),
    }
    result["targets"] = {"faster_than_lm_eval": result["speedup"] > 1,
                         "mc1_equal_mc2_within_1e-4_per_question": d_mc1 == 0 and d_mc2 <= 1e-4}
    table = Table(title=f"TruthfulQA v1 x{n}, {args.model} fp32, {threads} threads, {describe_cpu(result['cpu'])}")
    for col in ("", "process s", "scoring s", "RSS GB", "MC1", "MC2"):
        table.add_column(col, justify="left" if not col else "right")
    table.add_row("realm", f"{realm_s:.1f}", f"{score_s:.1f}", f"{realm_gb:.2f}",
                  f"{result['realm']['mc1']:.4f}", f"{result['realm']['mc2']:.6f}")
    table.add_row(f"lm-eval {harness['version']} bs {args.lm_eval_batch_size}", f"{lm_s:.1f}",
                  f"{harness['evaluate_s']:.1f}", f"{lm_gb:.2f}", f"{result['lm_eval']['mc1']:.4f}",
                  f"{result['lm_eval']['mc2']:.6f}")
    console.print(table)
    console.print(f"realm is {result['speedup']}x faster (whole process); per question max |ΔMC1| = {d_mc1:g}, "
                  f"max |ΔMC2| = {d_mc2:.2g}; per choice max |Δ log-likelihood| = {d_ll:.2g}", highlight=False)
    console.print(f"FLOP floor: {tokens} tokens x 2 x {params / 1e6:.1f}M params at {fp32_rate / 1e12:.2f} fp32 "
                  f"TFLOP/s = {floor_s:.2f} s; realm reaches {result['realm_share_of_flop_floor']:.1%} of it "
                  f"(whole process), {result['realm_scoring_share_of_flop_floor']:.1%} (scoring only)",
                  highlight=False)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
