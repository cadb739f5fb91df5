"""`realm serve` under 32 concurrent clients: requests/s and p50/p99 latency, with micro-batching (default) vs one
model call per request (--micro-batch 1, what a plain FastAPI wrapper around the model does), plus the in-process
batched throughput of the same reward as the ceiling.

    .venv/bin/python benchmarks/serve.py [--reward embedding] [--clients 32] [--requests 640] [reward.opt=val ...]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

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
    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for part in pool.map(worker, chunks):
            latencies.extend(part)
    elapsed = time.perf_counter() - t
    latencies.sort()
    calls = httpx.get(f"{url}/health").json()["model_calls"] - calls_before
    return {"seconds": round(elapsed, 3), "req_per_s": round(len(items) / elapsed, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "model_calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward", default="embedding")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("options", nargs="*", help="reward.KEY=VALUE options")
    args = parser.parse_args()
    items = [{"prompt": f"How do I solve problem number {i} in my garden?",
              "response": f"For problem {i}, water the plants early and check the soil drainage."}
             for i in range(args.requests)]
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
    prompts = [[{"role": "user", "content": x["prompt"]}] for x in items]
    reward.score(prompts[:32], [x["response"] for x in items[:32]])
    t = time.perf_counter()
    reward.score(prompts, [x["response"] for x in items])
    direct = time.perf_counter() - t
    reward.close()
    results["in-process batched (ceiling)"] = {"seconds": round(direct, 3),
                                               "req_per_s": round(len(items) / direct, 1)}

    table = Table(title=f"realm serve --reward {args.reward}: {args.requests} one-item requests, "
                        f"{args.clients} concurrent clients")
    for col in ("mode", "req/s", "p50 ms", "p99 ms", "model calls"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for name, r in results.items():
        table.add_row(name, str(r["req_per_s"]), str(r.get("p50_ms", "")), str(r.get("p99_ms", "")),
                      str(r.get("model_calls", "")))
    Console(stderr=True).print(table)
    batched, single = results["realm serve (micro-batching)"], results["one model call per request"]
    results["speedup_vs_one_call_per_request"] = round(batched["req_per_s"] / single["req_per_s"], 2)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
