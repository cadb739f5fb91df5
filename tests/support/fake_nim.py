"""A fake NVIDIA NIM reward server on 127.0.0.1 (the outside world, so a fake is fair) with scripted faults.

Scores are a deterministic function of the conversation (``fake_reward``), mostly negative like Nemotron's, so a
client's answers can be checked exactly. Faults are scripted inside the scored response text, which keeps them
deterministic under any concurrency:

- ``[[fault:429,500,timeout,text,json,choices]]`` — the n-th attempt at this conversation gets the n-th fault,
  later attempts succeed. ``429`` carries ``Retry-After``; ``timeout`` stalls past the client's timeout; ``text``
  answers ``reward: banana``; ``json`` a non-JSON body; ``choices`` a body without choices; ``echo`` a 400 whose body echoes the request
  headers, Authorization included (as some proxies do).
- ``[[always:500]]`` (or any fault name) — every attempt fails that way.

Run standalone for benchmarks: ``python tests/support/fake_nim.py --latency 0.1`` prints the port it listens on;
``GET /stats`` answers the request and connection counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT = re.compile(r"\[\[(fault|always):([a-z0-9,]+)\]\]")


def fake_reward(messages: list[dict]) -> float:
    """Deterministic reward in [-40, 10), in steps of 1/8 like Nemotron's printed rewards."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 400 / 8 - 40


class FakeNim:
    def __init__(self, *, latency: float = 0.0, retry_after: str = "1", stall: float = 3.0, api_key: str | None = None):
        self.latency = latency
        self.retry_after = retry_after
        self.stall = stall
        self.api_key = api_key
        self.attempts: dict[str, list[float]] = defaultdict(list)  # conversation key -> attempt times
        self.requests = 0
        self.connections = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeNim:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _fault_for(self, messages: list[dict], attempt: int) -> str | None:
        match = SCRIPT.search(messages[-1]["content"]) if messages else None
        if match is None:
            return None
        faults = match.group(2).split(",")
        if match.group(1) == "always":
            return faults[0]
        return faults[attempt] if attempt < len(faults) else None

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes: with Nagle on, the client's delayed ACK holds the body ~40 ms
            # on every keep-alive request (a real NIM behind a production server does not do that)
            disable_nagle_algorithm = True

            def setup(self):
                super().setup()
                with fake._lock:
                    fake.connections += 1  # one per TCP connection: a client that reuses connections opens few

            def log_message(self, *args):
                """Silence the per-request log lines so test output stays readable."""

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Content-Type", "application/json")
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (the timeout fault): nobody is left to answer

            def do_GET(self):
                if self.path != "/stats":
                    return self._send(404, b'{"error": "not found"}')
                with fake._lock:
                    body = {"requests": fake.requests, "connections": fake.connections}
                return self._send(200, json.dumps(body).encode())

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake._lock:
                    fake.requests += 1
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                try:
                    self._answer(body)
                finally:
                    with fake._lock:
                        fake._in_flight -= 1

            def _answer(self, body: bytes):
                if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, b'{"error": "unauthorized"}')
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, b'{"error": "not found"}')
                messages = json.loads(body)["messages"]
                key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
                with fake._lock:
                    attempt = len(fake.attempts[key])
                    fake.attempts[key].append(time.monotonic())
                time.sleep(fake.latency)
                fault = fake._fault_for(messages, attempt)
                if fault == "429":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": fake.retry_after})
                if fault == "500":
                    return self._send(500, b'{"error": "internal"}')
                if fault == "timeout":
                    time.sleep(fake.stall)
                if fault == "json":
                    return self._send(200, b"<html>bad gateway</html>")
                if fault == "echo":
                    return self._send(400, json.dumps({"error": "bad request", "headers": dict(self.headers)}).encode())
                if fault == "choices":
                    return self._send(200, b'{"id": "x", "choices": []}')
                content = "reward: banana" if fault == "text" else f"reward:{fake_reward(messages)}"
                payload = {"id": "fake", "object": "chat.completion", "model": json.loads(body).get("model"),
                           "choices": [{"index": 0, "finish_reason": "length",
                                        "message": {"role": "assistant", "content": content}}]}
                self._send(200, json.dumps(payload).encode())

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    with FakeNim(latency=args.latency) as fake:
        print(fake.port, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
