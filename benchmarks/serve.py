"""`realm serve` under 32 concurrent clients: requests/s and p50/p99 latency, with micro-batching (default) vs one
model call per request (--micro-batch 1, what a plain FastAPI wrapper around the model does), against the offline
throughput of the same reward on the same inputs in one process (what `realm score` does), the ceiling: the goal is
serve >= 80% of it.

    .venv/bin/python benchmarks/serve.py [--reward bt] [--clients 32] [--requests 640] [reward.opt=val ...]

The inputs are the first HH-RLHF helpful-base test pairs' responses (chosen, then rejected), one per request. The
``bt`` reward defaults to the demo's RM (runs/cpu-minilm, `make demo`), else the one benchmarks/rm_transfer.py trains
(runs/rm-transfer/helpful-base); pass ``reward.model=RUN_DIR`` for another.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(reward: str, options: list[str], extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "realm_cli.cli", "serve", "--reward", reward, *options,
                             "--port", str(port), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"realm serve exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("realm serve did not start")


def load(url: str, items: list[dict], clients: int) -> dict:
    latencies: list[float] = []

    def worker(chunk: list[dict]) -> list[float]:
        out = []
        with httpx.Client(timeout=300) as client:
            for item in chunk:
                t = time.perf_counter()
                r = client.post(f"{url}/score", json={"items": [item]})
                r.raise_for_status()
                out.append(time.perf_counter() - t)
        return out

    chunks = [items[i::clients] for i in range(clients)]
    calls_before = httpx.get(f"{url}/health").json()["model_calls"]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for part in pool.map(worker, chunks):
            latencies.extend(part)
    elapsed = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    calls = httpx.get(f"{url}/health").json()["model_calls"] - calls_before
    return {"seconds": round(elapsed, 3), "req_per_s": round(len(items) / elapsed, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "model_calls": calls,
            # the load generator shares this machine's cores with the server: its CPU time is time the server lacks
            "client_cpu_s": round(cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward", default="bt")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("options", nargs="*", help="reward.KEY=VALUE options")
    args = parser.parse_args()
    from ceiling import describe_cpu
    from score import DEFAULT_MODELS, hh_pairs

    if args.reward == "bt" and not any(o.startswith("reward.model=") for o in args.options):
        found = next((d for d in DEFAULT_MODELS if Path(REPO, d, "realm_rm.json").is_file()), None)
        if found is None:
            sys.exit(f"no realm-trained RM in {' or '.join(DEFAULT_MODELS)}: run `make demo` first, or pass "
                     "reward.model=RUN_DIR")
        args.options.append(f"reward.model={Path(REPO, found)}")
    records = hh_pairs()[: (args.requests + 1) // 2]
    items = ([{"prompt": r.prompt, "response": r.chosen} for r in records]
             + [{"prompt": r.prompt, "response": r.rejected} for r in records])[: args.requests]
    console = Console(stderr=True)
    console.print(f"{describe_cpu()}; {len(items)} HH helpful-base responses, reward {args.reward} "
                  f"{' '.join(args.options)}", highlight=False)
    results = {}
    for name, extra in [("realm serve (micro-batching)", []), ("one model call per request", ["--micro-batch", "1"])]:
        proc, url = start(args.reward, args.options, extra)
        try:
            load(url, items[: args.clients], args.clients)  # warm-up
            results[name] = load(url, items, args.clients)
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    from realm_cli.rewards.build import build_reward
    from realm_cli.rewards.options import spec_from_cli

    reward = build_reward(spec_from_cli(args.reward, args.options))
    prompts = [x["prompt"] for x in items]
    reward.score(prompts[:32], [x["response"] for x in items[:32]])
    t = time.perf_counter()
    reward.score(prompts, [x["response"] for x in items])
    direct = time.perf_counter() - t
    reward.close()
    results["offline, in one process (ceiling)"] = {"seconds": round(direct, 3),
                                                    "req_per_s": round(len(items) / direct, 1)}

    table = Table(title=f"realm serve --reward {args.reward}: {args.requests} one-item requests, "
                        f"{args.clients} concurrent clients")
    for col in ("mode", "req/s", "p50 ms", "p99 ms", "model calls", "client CPU s"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for name, r in results.items():
        table.add_row(name, str(r["req_per_s"]), str(r.get("p50_ms", "")), str(r.get("p99_ms", "")),
                      str(r.get("model_calls", "")), str(r.get("client_cpu_s", "")))
    console.print(table)
    batched, single = results["realm serve (micro-batching)"], results["one model call per request"]
    results["speedup_vs_one_call_per_request"] = round(batched["req_per_s"] / single["req_per_s"], 2)
    offline = results["offline, in one process (ceiling)"]
    results["share_of_offline"] = round(batched["req_per_s"] / offline["req_per_s"], 3)
    results["cpu"] = describe_cpu()
    console.print(f"serve with micro-batching: {results['share_of_offline']:.0%} of the offline throughput (goal >= "
                  f"80%), {results['speedup_vs_one_call_per_request']}x one model call per request", highlight=False)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
