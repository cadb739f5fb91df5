"""The `ensemble` reward: a weighted mean of any rewards, optionally z-scored within each prompt first.

Per-prompt normalisation exists because some rewards (Nemotron's, by its model card) are only comparable between
responses to the same prompt; z-scoring each member within a prompt's responses puts members on one scale.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.contracts import Message
from realm_cli.contracts import Reward, ScoreBatch


def zscore_within_prompts(prompts: Sequence[list[Message]], scores: Sequence[float]) -> list[float]:
    """(x - mean) / std over each prompt's responses in this batch (population std).

    A prompt with one response, or whose responses all score the same, gets 0.0: it sits exactly at its prompt's
    mean, and there is nothing to compare it with. NaN members are left out of the statistics and stay NaN.
    """
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(json.dumps(p, sort_keys=True), []).append(i)
    out = [math.nan] * len(scores)
    for idx in groups.values():
        valid = [i for i in idx if not math.isnan(scores[i])]
        if not valid:
            continue
        mean = sum(scores[i] for i in valid) / len(valid)
        std = math.sqrt(sum((scores[i] - mean) ** 2 for i in valid) / len(valid))
        for i in valid:
            out[i] = (scores[i] - mean) / std if std > 0 else 0.0
    return out


@dataclass
class EnsembleConfig:
    members: list[PluginSpec] = plugin_field("reward", default_factory=list)
    weights: list[float] = field(default_factory=list)  # empty: equal weights
    normalize: Literal["none", "prompt"] = "none"

    def __post_init__(self):
        if not self.members:
            raise ValueError("members: at least one reward is required, e.g. [{name: embedding}, {name: nim}]")
        if self.weights and len(self.weights) != len(self.members):
            raise ValueError(f"weights: {len(self.weights)} weights for {len(self.members)} members")
        if self.weights and sum(self.weights) <= 0:
            raise ValueError("weights: must sum to a positive number")


class EnsembleReward(Reward):
    """Weighted mean of several rewards, optionally z-scored within each prompt's responses first."""

    Config = EnsembleConfig

    def __init__(self, config=None):
        super().__init__(config)
        from realm_cli.rewards.build import build_reward

        self.members: list[Reward] = []
        try:
            for spec in self.config.members:
                self.members.append(build_reward(spec))
        except BaseException:
            self.close()
            raise
        self.weights = self.config.weights or [1.0] * len(self.members)

    def score_batch(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> ScoreBatch:
        per_member = [m.score(prompts, responses) for m in self.members]
        if self.config.normalize == "prompt":
            per_member = [zscore_within_prompts(prompts, s) for s in per_member]
        total = sum(self.weights)
        scores = [sum(w * s[i] for w, s in zip(self.weights, per_member)) / total for i in range(len(responses))]
        names = [spec.name for spec in self.config.members]
        extras = {f"{i}:{name}": s for i, (name, s) in enumerate(zip(names, per_member))}
        return ScoreBatch(scores, extras)

    def close(self) -> None:
        for member in self.members:
            member.close()
