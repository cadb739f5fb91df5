"""The HTTP face of any reward (``realm serve``): FastAPI app with micro-batching, auth and request limits.

Endpoints: ``POST /score`` ({"items": [{prompt, response}, ...]}); OpenRLHF's remote reward model ``POST /get_reward``
({"query": [templated texts], "prompts"?: [...], "labels"?: [...]} -> {"rewards", "scores", "extra_logs"}); vLLM's
``POST /pooling`` and ``POST /classify`` ({"model", "input" | "messages"} -> {"data": [{"index", "data" | "probs"}]});
``GET /health``. Templated text is parsed back into messages (``realm_cli.rewards.templates``) and scored with the
reward's own format. Concurrent requests are merged into
one model call; a failed model call fails every request in it with 500 — no request ever gets a made-up score, and
``/health`` answers 503 while the latest model call failed.

Requests must name this server in their ``Host`` header (loopback names, the bound address, ``--allowed-host``):
a web page on another origin that rebinds its DNS name to 127.0.0.1 cannot reach a token-less loopback server.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from realm_cli.errors import excerpt
from realm_cli.rewards.safe import json_float, json_safe
from realm_cli.contracts import Message, as_messages
from realm_cli.contracts import Reward, ScoreBatch


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeSettings:
    token: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 256  # items per request
    micro_batch: int = 64  # items per model call
    window_ms: float = 5.0  # how long the first request of a micro-batch waits for company
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES  # Host header names accepted; "*" accepts any
    chat_template: str | None = None  # the policy's template for templated text; None: detected per text


def host_name(header: str) -> str:
    """The name in a Host header, without its port (``[::1]:8000`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; the scheme is case-insensitive (RFC 7235)."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Item(BaseModel):
    prompt: str | list[ChatMessage] = Field(description="a user turn, or a whole conversation")
    response: str

    def messages(self) -> list[Message]:
        if isinstance(self.prompt, str):
            return as_messages(self.prompt)
        return [{"role": m.role, "content": m.content} for m in self.prompt]


class ScoreRequest(BaseModel):
    items: list[Item] = Field(min_length=1)


class RewardRequest(BaseModel):
    """OpenRLHF ``remote_rm`` body: the policy's chat-templated samples (prompt + response, special tokens included),
    optionally the templated prompts they start with, and per-sample labels."""

    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list | None = None


class PoolingRequest(BaseModel):
    """vLLM's ``/pooling`` and ``/classify`` body: text (templated, or an HH transcript) or one chat conversation."""

    model: str | None = None
    input: str | list[str] | None = None
    messages: list[ChatMessage] | None = None


class MicroBatcher:
    """Queue of (prompts, responses, future); one worker merges what arrives within a short window into one call.

    The model runs on one dedicated thread: models are not thread-safe, and the event loop must stay free.
    """

    def __init__(self, reward: Reward, micro_batch: int, window_s: float):
        self.reward = reward
        self.micro_batch = micro_batch
        self.window_s = window_s
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward")
        self.model_calls = 0
        self.items_scored = 0
        self.failures = 0
        self.last_error: str | None = None  # of the latest model call; None once a call succeeds again

    async def submit(self, prompts: list[list[Message]], responses: list[str], labels: list | None = None) -> ScoreBatch:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((prompts, responses, future, labels))
        return await future

    async def _collect(self) -> list:
        loop = asyncio.get_running_loop()
        jobs = [await self.queue.get()]
        size = len(jobs[0][0])
        deadline = loop.time() + self.window_s
        while size < self.micro_batch:
            remaining = deadline - loop.time()
            try:
                job = self.queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self.queue.get(), remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            jobs.append(job)
            size += len(job[0])
        return jobs

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            prompts = [p for job in jobs for p in job[0]]
            responses = [r for job in jobs for r in job[1]]
            call = self.reward.score_batch
            if getattr(self.reward, "uses_labels", False):
                labels = [x for job in jobs for x in (job[3] if job[3] is not None else [None] * len(job[0]))]
                call = functools.partial(self.reward.score_batch, labels=labels)
            try:
                batch = await loop.run_in_executor(self.executor, call, prompts, responses)
                if len(batch.scores) != len(responses):
                    raise RuntimeError(f"the reward returned {len(batch.scores)} scores for {len(responses)} items")
            except Exception as exc:  # every request in this call fails; none gets a score
                self.failures += 1
                self.last_error = excerpt(f"{type(exc).__name__}: {exc}")
                for job in jobs:
                    if not job[2].done():
                        job[2].set_exception(exc)
                continue
            self.model_calls += 1
            self.items_scored += len(responses)
            self.last_error = None
            start = 0
            for job_prompts, _, future, _ in jobs:
                end = start + len(job_prompts)
                extras = {k: v[start:end] for k, v in batch.extras.items() if isinstance(v, list) and len(v) == len(responses)}
                if not future.done():
                    future.set_result(ScoreBatch(batch.scores[start:end], extras))
                start = end

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def build_app(reward: Reward, reward_name: str, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    batcher = MicroBatcher(reward, settings.micro_batch, settings.window_ms / 1000)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = asyncio.create_task(batcher.run())
        yield
        worker.cancel()
        batcher.close()

    allowed = {h.lower().strip("[]") for h in settings.allowed_hosts}
    app = FastAPI(title="realm reward server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = batcher

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError):
        # FastAPI's own handler echoes each bad input back, and a body holding NaN or Infinity (which Python's JSON
        # parser accepts) then cannot be rendered: the client got a 500. Say where and what, without the input.
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        if "json" not in request.headers.get("content-type", "").lower():  # curl -d sends form encoding
            detail.insert(0, {"loc": ["header", "content-type"], "type": "content_type",
                              "msg": "send the body as JSON with the header 'Content-Type: application/json'"})
        return JSONResponse({"detail": detail}, status_code=422)

    @app.middleware("http")
    async def limits_and_auth(request: Request, call_next):
        if "*" not in settings.allowed_hosts and host_name(request.headers.get("host", "")) not in allowed:
            return JSONResponse({"detail": "unknown Host header: start realm serve with --allowed-host NAME to "
                                           "accept it"}, status_code=421)
        if settings.token is not None and request.url.path != "/health":
            given = bearer_token(request.headers.get("authorization", "")) or ""
            if not hmac.compare_digest(given.encode(), settings.token.encode()):
                return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return JSONResponse({"detail": "Content-Length required"}, status_code=411)
            if not length.isdigit() or int(length) > settings.max_body_bytes:
                return JSONResponse({"detail": f"request body of {length} bytes exceeds the limit of "
                                               f"{settings.max_body_bytes} bytes"}, status_code=413)
        return await call_next(request)

    def check_batch(n: int) -> None:
        if n > settings.max_batch:
            raise HTTPException(422, f"batch of {n} items exceeds the limit of {settings.max_batch} per request")

    async def score(prompts: list[list[Message]], responses: list[str], labels: list | None = None) -> ScoreBatch:
        try:
            return await batcher.submit(prompts, responses, labels)
        except Exception as exc:
            raise HTTPException(500, f"reward failed: {type(exc).__name__}: {exc}") from None

    @app.get("/health")
    async def health():
        body = {"status": "ok" if batcher.last_error is None else "failing", "reward": reward_name,
                "model_calls": batcher.model_calls, "items_scored": batcher.items_scored,
                "failed_calls": batcher.failures}
        if batcher.last_error is not None:  # the latest model call failed: scoring does not work right now
            return JSONResponse({**body, "last_error": batcher.last_error}, status_code=503)
        return body

    @app.post("/score")
    async def score_items(body: ScoreRequest):
        check_batch(len(body.items))
        batch = await score([i.messages() for i in body.items], [i.response for i in body.items])
        return {"scores": [json_float(s) for s in batch.scores], "extras": json_safe(batch.extras)}

    def samples(queries: list[str], prompts: list[str] | None) -> tuple[list[list[Message]], list[str]]:
        from realm_cli.errors import RealmError
        from realm_cli.rewards.templates import split_sample

        out_prompts, out_responses = [], []
        for i, query in enumerate(queries):
            try:
                messages, response = split_sample(query, prompts[i] if prompts else None, settings.chat_template)
            except RealmError as exc:
                raise HTTPException(422, f"query[{i}]: {exc}") from None
            out_prompts.append(messages)
            out_responses.append(response)
        return out_prompts, out_responses

    @app.post("/get_reward")
    async def get_reward(body: RewardRequest):
        check_batch(len(body.query))
        for name, values in (("prompts", body.prompts), ("labels", body.labels)):
            if values is not None and len(values) != len(body.query):
                raise HTTPException(422, f"'{name}' has {len(values)} entries for {len(body.query)} queries")
        prompts, responses = samples(body.query, body.prompts)
        batch = await score(prompts, responses, body.labels)
        rewards = [json_float(s) for s in batch.scores]
        # OpenRLHF's dynamic filtering reads "scores" in [0, 1]: the reward's sigmoid (a BT reward's P(preferred))
        scores = [None if r is None else 1 / (1 + math.exp(-max(-60.0, min(60.0, r)))) for r in rewards]
        extra_logs = {k: json_safe(v) for k, v in batch.extras.items()
                      if isinstance(v, list) and all(isinstance(x, (int, float, bool)) or x is None for x in v)}
        return {"rewards": rewards, "scores": scores, "extra_logs": extra_logs}

    def pooled(body: PoolingRequest) -> tuple[list[list[Message]], list[str]]:
        if (body.input is None) == (body.messages is None):
            raise HTTPException(422, "give exactly one of 'input' (text) or 'messages' (a conversation)")
        if body.messages is not None:
            turns = [{"role": m.role, "content": m.content} for m in body.messages]
            if len(turns) < 2 or turns[-1]["role"] != "assistant":
                raise HTTPException(422, "'messages' must end in the assistant turn to score")
            return [turns[:-1]], [turns[-1]["content"]]
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts:
            raise HTTPException(422, "'input' is empty")
        check_batch(len(texts))
        return samples(texts, None)

    def vllm_list(model: str | None, data: list[dict]) -> dict:
        return {"id": f"realm-{time.time_ns()}", "object": "list", "created": int(time.time()),
                "model": model or reward_name, "data": data, "usage": {"prompt_tokens": 0, "total_tokens": 0}}

    @app.post("/pooling")
    async def pooling(body: PoolingRequest):
        batch = await score(*pooled(body))
        return vllm_list(body.model, [{"index": i, "object": "pooling", "data": [json_float(s)]}
                                      for i, s in enumerate(batch.scores)])

    @app.post("/classify")
    async def classify(body: PoolingRequest):
        # a one-label reward model served by vLLM with its activation off: "probs" holds the raw score
        batch = await score(*pooled(body))
        return vllm_list(body.model, [{"index": i, "label": "LABEL_0", "probs": [json_float(s)], "num_classes": 1}
                                      for i, s in enumerate(batch.scores)])

    return app
