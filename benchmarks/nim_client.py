"""NIM client throughput: realm's nim reward (16 concurrent requests, retries, SQLite cache) vs the sequential
one-request-at-a-time loop of the REALM seed, on the same 500 conversations against the fake NIM server with
100 ms latency. Then a second realm run, which must be all cache hits.

    .venv/bin/python benchmarks/nim_client.py [--requests 500] [--latency 0.1] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.fake_nim import fake_reward  # noqa: E402

from realm_cli.rewards.nim import parse_reward  # noqa: E402
from realm_plugins.rewards.nim import NimConfig, NimReward  # noqa: E402


def sequential_loop(base_url: str, conversations: list[list[dict]]) -> list[float]:
    """The plain way: one blocking request after another (the seed's loop, minus its silent 0.0 on errors)."""
    out = []
    with httpx.Client(timeout=60) as client:
        for messages in conversations:
            body = client.post(f"{base_url}/chat/completions",
                               json={"model": "nvidia/llama-3.1-nemotron-70b-reward", "messages": messages}).json()
            out.append(parse_reward(body))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    prompts = [[{"role": "user", "content": f"Question {i}: how should I do task {i}?"}] for i in range(args.requests)]
    responses = [f"Answer {i}: do it carefully." for i in range(args.requests)]
    conversations = [p + [{"role": "assistant", "content": r}] for p, r in zip(prompts, responses)]
    expected = [fake_reward(c) for c in conversations]
    console = Console(stderr=True)
    # The fake server runs in its own process: in this one it would share the GIL with the client being measured.
    server = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parents[1] / "tests" / "support" /
                                                   "fake_nim.py"), "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"

    def stats() -> dict:
        return httpx.get(base_url.removesuffix("/v1") + "/stats").json()

    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            plain = sequential_loop(base_url, conversations)
            plain_s = time.perf_counter() - t

            config = NimConfig(base_url=base_url, cache_path=str(Path(tmp) / "nim.sqlite"),
                               concurrency=args.concurrency)
            before = stats()
            reward = NimReward(config)
            t = time.perf_counter()
            realm = reward.score(prompts, responses)
            realm_s = time.perf_counter() - t
            first_stats = reward.stats()
            reward.close()
            connections = stats()["connections"] - before["connections"] - 1  # less this stats call's own

            requests_before = stats()["requests"]
            reward = NimReward(config)  # a fresh client on the same cache file: what a restarted run sees
            t = time.perf_counter()
            cached = reward.score(prompts, responses)
            cached_s = time.perf_counter() - t
            second_stats = reward.stats()
            reward.close()
            second_requests = stats()["requests"] - requests_before
    finally:
        server.terminate()

    lost = sum(1 for a, b in zip(realm, expected) if not (a == b and not math.isnan(a)))
    result = {
        "requests": args.requests, "latency_s": args.latency, "concurrency": args.concurrency,
        "sequential_s": round(plain_s, 3), "realm_s": round(realm_s, 3), "speedup": round(plain_s / realm_s, 2),
        "realm_lost_or_wrong": lost, "sequential_wrong": sum(a != b for a, b in zip(plain, expected)),
        "realm_stats": first_stats, "second_run_s": round(cached_s, 3), "second_run_stats": second_stats,
        "second_run_requests_sent": second_requests, "second_run_all_hits": second_stats["cache_hits"] == args.requests
        and second_requests == 0 and cached == realm,
        "concurrency_bound_s": round(args.requests * args.latency / args.concurrency, 3),
        "realm_vs_bound": round(realm_s / (args.requests * args.latency / args.concurrency), 3),
        "connections_opened": connections,
        "targets": {"speedup>=12": plain_s / realm_s >= 12, "zero_lost": lost == 0,
                    "within_10pct_of_bound": realm_s <= 1.1 * args.requests * args.latency / args.concurrency,
                    "connections_reused": connections <= args.concurrency},
    }
    table = Table(title=f"NIM client: {args.requests} requests, fake server at {args.latency * 1000:.0f} ms")
    for col in ("run", "seconds", "req/s", "notes"):
        table.add_column(col, justify="right" if col in ("seconds", "req/s") else "left")
    table.add_row("sequential loop (seed)", f"{plain_s:.2f}", f"{args.requests / plain_s:.1f}", "")
    table.add_row(f"realm nim, concurrency {args.concurrency}", f"{realm_s:.2f}", f"{args.requests / realm_s:.1f}",
                  f"{result['speedup']}x, {result['realm_vs_bound']:.2f}x the concurrency bound "
                  f"({result['concurrency_bound_s']} s), lost/wrong {lost}, connections {connections}")
    table.add_row("realm nim, second run", f"{cached_s:.3f}", f"{args.requests / cached_s:.0f}",
                  f"cache hits {second_stats['cache_hits']}, requests sent {second_requests}")
    console.print(table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
