"""The `nim` reward: NVIDIA NIM Llama-3.1-Nemotron-70B-Reward (or any NIM reward model) over its HTTP API."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from realm_cli.contracts import Message
from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Reward, ScoreBatch


@dataclass
class NimConfig:
    base_url: str = "https://integrate.api.nvidia.com/v1"
    model: str = "nvidia/llama-3.1-nemotron-70b-reward"
    api_key_env: str = "NVIDIA_NIM_API_KEY"  # the variable (environment or .env) holding the key
    concurrency: int = 16
    max_retries: int = 5
    timeout: float = 60.0  # seconds per request
    backoff_base: float = 0.5  # first retry waits ~0.5 s, doubling, with jitter, unless the server sends Retry-After
    backoff_max: float = 30.0
    cache: bool = True
    cache_path: str | None = None  # default: ~/.cache/realm/rewards/nim.sqlite (or $REALM_CACHE/rewards)
    on_error: Literal["raise", "nan"] = "raise"  # nan: unscorable samples become NaN, counted in stats


class NimReward(Reward):
    """NVIDIA NIM reward model (Nemotron-70B-Reward) over the OpenAI-compatible API, cached on disk."""

    Config = NimConfig

    def __init__(self, config=None):
        super().__init__(config)
        from realm_cli.rewards.nim import NimClient, default_cache_path, resolve_api_key
        from realm_cli.rewards.cache import RewardCache

        c = self.config
        cache = RewardCache(c.cache_path or default_cache_path()) if c.cache else None
        self.client = NimClient(base_url=c.base_url, model=c.model,
                                api_key=resolve_api_key(c.base_url, c.api_key_env), concurrency=c.concurrency,
                                max_retries=c.max_retries, timeout=c.timeout, backoff_base=c.backoff_base,
                                backoff_max=c.backoff_max, cache=cache)
        self.nan_count = 0

    def score_batch(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> ScoreBatch:
        from realm_cli.rewards.nim import NimError

        conversations = [[{"role": m["role"], "content": m["content"]} for m in p]
                         + [{"role": "assistant", "content": r}] for p, r in zip(prompts, responses)]
        scores, errors = self.client.score_many(conversations)
        failed = [e for e in errors if e is not None]
        if failed and self.config.on_error == "raise":
            raise NimError(f"{len(failed)} of {len(errors)} samples could not be scored (scores already obtained "
                           f"are cached; set reward.on_error=nan to record NaN instead). First error: {failed[0]}")
        self.nan_count += sum(1 for s in scores if math.isnan(s))
        return ScoreBatch(scores, {"error": errors} if failed else {})

    def stats(self) -> dict:
        return {**self.client.stats.as_dict(), "nan": self.nan_count}

    def close(self) -> None:
        self.client.close()


@hookimpl
def register_rewards(register):
    register("nim", NimReward, description=NimReward.__doc__)
