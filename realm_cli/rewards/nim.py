"""Client for NVIDIA NIM reward models (Llama-3.1-Nemotron-70B-Reward) over the OpenAI-compatible chat API.

Hand-written on httpx because the OpenAI SDK neither exposes Retry-After-aware retries per request nor a bounded
thread pool with a shared persistent cache; the parts are small. What the REALM seed got wrong and this fixes:
every error became a silent 0.0, retries never fired, calls were sequential.
"""

from __future__ import annotations

import email.utils
import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from realm_cli.errors import RealmError, excerpt, redact
from realm_cli.rewards.cache import RewardCache, cache_key, default_dir

DEFAULT_BASE_URL = "https://integrate.api.nvidia.com/v1"
DEFAULT_MODEL = "nvidia/llama-3.1-nemotron-70b-reward"
KEY_ENV = "NVIDIA_NIM_API_KEY"
REWARD_TEXT = re.compile(r"reward:\s*(\S+)")
MAX_RETRY_AFTER = 300.0  # a server asking for more than 5 minutes is treated as down


class NimError(RealmError):
    """A NIM request that could not produce a score (after retries, or a malformed answer)."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class NimStats:
    requests: int = 0  # HTTP attempts sent (retries included)
    retries: int = 0
    scored: int = 0  # conversations scored over the network
    failed: int = 0  # conversations that ended in an error
    cache_hits: int = 0
    cache_misses: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_api_key(base_url: str, env_name: str = KEY_ENV) -> str | None:
    """The key from the environment, else from a ``.env`` file found from the working directory up.

    A self-hosted NIM on localhost needs no key; the hosted API does, and saying so early beats a 401 per request.
    """
    key = os.environ.get(env_name)
    if not key:
        from dotenv import dotenv_values, find_dotenv

        found = find_dotenv(usecwd=True)
        if found:
            key = dotenv_values(found).get(env_name)
    if not key and (urlparse(base_url).hostname or "") not in ("127.0.0.1", "localhost", "::1"):
        raise RealmError(f"the nim reward needs an API key: set {env_name} in the environment or in a .env file")
    return key or None


def parse_reward(body: object) -> float:
    """``choices[0].message.content`` must be exactly ``reward:<float>``; anything else is an error, never 0.0."""
    try:
        content = body["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise NimError(f"malformed NIM response (no choices[0].message.content): {excerpt(str(body))!r}") from None
    match = REWARD_TEXT.fullmatch(content.strip()) if isinstance(content, str) else None
    try:
        value = float(match.group(1)) if match else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise NimError(f"malformed NIM response: expected 'reward:<float>', got {excerpt(str(content))!r}")
    return value


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the HTTP-date form
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class NimClient:
    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, model: str = DEFAULT_MODEL, api_key: str | None = None,
                 concurrency: int = 16, max_retries: int = 5, timeout: float = 60.0, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, cache: RewardCache | None = None, seed: int | None = None):
        if concurrency < 1:
            raise RealmError(f"nim: concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.cache = cache
        self.stats = NimStats()
        self._stats_lock = threading.Lock()
        self._random = random.Random(seed)
        self._secret = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.Client(headers=headers, timeout=timeout, limits=limits)

    def __repr__(self) -> str:  # never shows the key
        return f"NimClient(base_url={self.base_url!r}, model={self.model!r}, concurrency={self.concurrency})"

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** attempt)
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)  # "equal jitter": spread, but never ~0

    def _quote(self, text: str) -> str:
        """A server's words for an error message: redacted (a server may echo our Authorization header), cut at a
        word boundary."""
        return repr(excerpt(redact(text, self._secret)))

    def _attempt(self, messages: list[dict]) -> float:
        self._count(requests=1)
        try:
            response = self._http.post(f"{self.base_url}/chat/completions",
                                       json={"model": self.model, "messages": messages})
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection error ({type(exc).__name__}: {redact(str(exc), self._secret)})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}: {self._quote(response.text)}",
                             _retry_after_seconds(response.headers.get("retry-after")))
        if response.status_code in (401, 403):
            raise NimError(f"NIM refused the API key (HTTP {response.status_code}); check {KEY_ENV}")
        if response.status_code != 200:
            raise NimError(f"NIM request failed: HTTP {response.status_code}: {self._quote(response.text)}")
        try:
            body = response.json()
        except ValueError:
            raise NimError(f"malformed NIM response (not JSON): {self._quote(response.text)}") from None
        try:
            return parse_reward(body)
        except NimError as exc:
            raise NimError(redact(str(exc), self._secret)) from None

    def score_one(self, messages: list[dict]) -> float:
        """One conversation (the scored response last, as the assistant turn): a score or a NimError."""
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            try:
                return self._attempt(messages)
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.max_retries:
                    break
                self._count(retries=1)
                time.sleep(self._backoff(attempt, exc.retry_after))
        raise NimError(f"NIM request failed after {self.max_retries + 1} attempts: {last}")

    def score_many(self, conversations: list[list[dict]]) -> tuple[list[float], list[str | None]]:
        """Scores (NaN where failed) and error messages (None where scored), in input order.

        Cached conversations are not sent; identical conversations in one call are sent once; at most
        ``concurrency`` requests are in flight.
        """
        keys = [cache_key(self.base_url, self.model, c) for c in conversations]
        cached: dict[str, float] = {}
        if self.cache is not None:
            before = (self.cache.hits, self.cache.misses)
            cached = self.cache.get_many(keys)
            self._count(cache_hits=self.cache.hits - before[0], cache_misses=self.cache.misses - before[1])
        todo = {k: c for k, c in zip(keys, conversations) if k not in cached}
        results: dict[str, float] = dict(cached)
        errors: dict[str, str] = {}

        def work(key: str, messages: list[dict]) -> None:
            try:
                score = self.score_one(messages)
            except NimError as exc:
                errors[key] = str(exc)
                self._count(failed=1)
            else:
                results[key] = score
                self._count(scored=1)
                if self.cache is not None:
                    self.cache.put(key, score)

        if todo:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)), thread_name_prefix="nim") as pool:
                for future in [pool.submit(work, k, c) for k, c in todo.items()]:
                    future.result()
        return [results.get(k, math.nan) for k in keys], [errors.get(k) for k in keys]

    def close(self) -> None:
        self._http.close()
        if self.cache is not None:
            self.cache.close()


def default_cache_path() -> Path:
    return default_dir() / "nim.sqlite"
