"""Load 100k generated preference records: realm's streaming loader vs. plain json-lines and datasets.load_dataset.

Each method runs in its own child process so its peak RSS is its own. Prints a rich table with records/s, peak RSS
and ratios against the baselines, and writes the numbers as JSON.

    .venv/bin/python benchmarks/data_load.py [--records 100000] [--json-out runs/bench/data_load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = {
    "realm iter_source (stream)": "realm_stream",
    "realm load_source (list)": "realm_list",
    "plain json.loads per line (list)": "plain_lines",
    "datasets.load_dataset('json')": "hf_datasets",
}


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    words = "the a reward model prefers helpful honest answers over vague ones because people said so".split()

    def sentence(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            turns = [{"role": "user" if t % 2 == 0 else "assistant", "content": sentence(rng.randint(5, 40))}
                     for t in range(rng.choice((1, 3, 5)))]
            row = {"prompt": turns, "chosen": sentence(rng.randint(10, 60)), "rejected": sentence(rng.randint(5, 60))}
            if i % 10 == 0:
                row["margin"] = 1.0
            fh.write(json.dumps(row) + "\n")


def run_method(method: str, path: str) -> dict:
    start = time.perf_counter()
    if method == "realm_stream":
        from realm_cli.config import PluginSpec
        from realm_cli.data.load import LoadReport, iter_source

        report = LoadReport("preference")
        count = sum(1 for _ in iter_source(PluginSpec("preference", {"path": path}), report))
    elif method == "realm_list":
        from realm_cli.config import PluginSpec
        from realm_cli.data.load import load_source

        count = len(load_source(PluginSpec("preference", {"path": path})).records)
    elif method == "plain_lines":
        with open(path, encoding="utf-8") as fh:
            count = len([json.loads(line) for line in fh if line.strip()])
    elif method == "hf_datasets":
        import datasets

        datasets.disable_progress_bars()
        with tempfile.TemporaryDirectory() as cache:  # a cold cache: the JSON -> Arrow conversion is counted
            ds = datasets.load_dataset("json", data_files=path, split="train", cache_dir=cache)
            count = sum(1 for _ in ds)
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"records": count, "seconds": seconds, "records_per_s": count / seconds, "peak_rss_mib": peak_kib / 1024}


def baseline_rss_mib() -> float:
    """Peak RSS of a child that only imports what every method imports (the interpreter + realm's config)."""
    code = ("import resource, realm_cli.config; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--json-out", default="runs/bench/data_load.json")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_method(*args.child)))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        generate(path, args.records)
        size_mib = path.stat().st_size / 2**20
        results = {}
        for label, method in METHODS.items():
            console.print(f"running {label} …", highlight=False)
            out = subprocess.run([sys.executable, __file__, "--child", method, str(path)], check=True,
                                 capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            results[label] = json.loads(out.stdout.strip().splitlines()[-1])
    floor = baseline_rss_mib()
    plain = results["plain json.loads per line (list)"]
    hf = results["datasets.load_dataset('json')"]
    table = Table(title=f"loading {args.records:,} generated pairs ({size_mib:.1f} MiB JSONL); "
                        f"import-only child peak RSS {floor:.0f} MiB")
    for col in ("method", "records", "seconds", "records/s", "peak RSS MiB", "speed vs plain", "speed vs datasets",
                "RSS vs plain"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for label, r in results.items():
        table.add_row(label, f"{r['records']:,}", f"{r['seconds']:.2f}", f"{r['records_per_s']:,.0f}",
                      f"{r['peak_rss_mib']:.0f}", f"{r['records_per_s'] / plain['records_per_s']:.2f}x",
                      f"{r['records_per_s'] / hf['records_per_s']:.2f}x",
                      f"{r['peak_rss_mib'] / plain['peak_rss_mib']:.2f}x")
    console.print(table)
    out_path = Path(args.json_out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"records": args.records, "file_mib": size_mib, "import_only_rss_mib": floor,
                                    "results": results}, indent=2))
    console.print(f"wrote {out_path}", highlight=False)


if __name__ == "__main__":
    main()
