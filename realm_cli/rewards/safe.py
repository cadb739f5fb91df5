"""Scoring policy samples with any reward, where a sample the reward cannot score is NaN and counted, never 0."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from realm_cli.contracts import Message
from realm_cli.errors import RealmError
from realm_cli.contracts import Reward


@dataclass
class Scores:
    values: list[float]  # NaN where the reward raised or returned a non-finite number
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few distinct failure messages

    @property
    def ok(self) -> list[bool]:
        return [math.isfinite(v) for v in self.values]


def score(reward: Reward, prompts: Sequence[list[Message]], responses: Sequence[str], *,
          batch_size: int = 32, what: str = "reward") -> Scores:
    """Score in batches; a batch that raises is retried one sample at a time so one bad sample costs only itself.
    If nothing at all can be scored, that is an error (the reward is misconfigured, not noisy)."""
    values: list[float] = []
    errors: list[str] = []
    for start in range(0, len(responses), batch_size):
        p = list(prompts[start:start + batch_size])
        r = list(responses[start:start + batch_size])
        try:
            values.extend(_checked(reward.score(p, r), len(r)))
        except RealmError as exc:
            if str(exc).startswith("reward returned"):
                raise
            values.extend(_one_by_one(reward, p, r, errors))
        except Exception:  # noqa: BLE001 - any failure of a plugin is isolated per sample below
            values.extend(_one_by_one(reward, p, r, errors))
    failed = sum(not math.isfinite(v) for v in values)
    if values and failed == len(values):
        detail = f": {errors[0]}" if errors else " (every score was NaN/inf)"
        raise RealmError(f"{what} could not score any of {len(values)} responses{detail}")
    return Scores(values, failed, errors)


def _checked(scores, n: int) -> list[float]:
    scores = list(scores)
    if len(scores) != n:
        raise RealmError(f"reward returned {len(scores)} scores for {n} responses")
    return [float(s) if s is not None and math.isfinite(float(s)) else math.nan for s in scores]


def _one_by_one(reward: Reward, prompts, responses, errors: list[str]) -> list[float]:
    out = []
    for p, r in zip(prompts, responses):
        try:
            out.extend(_checked(reward.score([p], [r]), 1))
        except Exception as exc:  # noqa: BLE001 - counted as a failed sample and reported
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if message not in errors and len(errors) < 5:
                errors.append(message)
            out.append(math.nan)
    return out


def json_float(x: float) -> float | None:
    return None if math.isnan(x) else x  # JSON has no NaN: an unscored sample (on_error: nan) is null


def json_safe(value):
    """Extras as strict JSON: NaN anywhere inside becomes null."""
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value
