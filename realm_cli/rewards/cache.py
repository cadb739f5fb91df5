"""A persistent on-disk cache of reward scores (SQLite), keyed by a stable hash of model + conversation.

The key is sha256 over canonical JSON, never Python's ``hash()``: that one is salted per process, so a cache keyed
by it never hits across runs (the REALM seed's embedding cache had exactly that defect).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from realm_cli.errors import RealmError


def default_dir() -> Path:
    from realm_cli.models import cache_root

    return cache_root() / "rewards"


def cache_key(endpoint: str, model: str, messages: list[dict]) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace) of everything that decides the score: the endpoint
    (staging, a fake and production can answer differently for one model name), the model and the conversation.
    Identical across processes and machines."""
    canonical = json.dumps({"endpoint": endpoint.rstrip("/"), "model": model,
                            "messages": [{"role": m["role"], "content": m["content"]} for m in messages]},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RewardCache:
    """key -> float. Only real scores go in (never NaN); safe to share between threads of one process and between
    processes (SQLite WAL)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, score REAL NOT NULL)")
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise RealmError(f"reward cache {self.path}: cannot open ({exc})") from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: list[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):  # SQLite's bound-parameter limit
                chunk = unique[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, score in self._db.execute(f"SELECT key, score FROM scores WHERE key IN ({marks})", chunk):
                    found[key] = score
            self.hits += sum(1 for k in keys if k in found)
            self.misses += sum(1 for k in keys if k not in found)
        return found

    def put(self, key: str, score: float) -> None:
        if score != score:  # NaN means "could not score": never cache it
            return
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO scores (key, score) VALUES (?, ?)", (key, float(score)))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
