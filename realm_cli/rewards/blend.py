"""The `blend` reward: a weighted harmonic mean of a similarity reward and another reward.

Both inputs are first mapped into (0, 1], because a harmonic mean is only meaningful for positive numbers:

- similarity s (cosine, in [-1, 1]):   s' = (s + 1) / 2
- reward r (any real, e.g. Nemotron's -18.1): r' = sigmoid(r / tau)

then ``blend = 1 / (alpha / s' + (1 - alpha) / r')`` (s' and r' floored at ``eps`` so a cosine of exactly -1 stays
finite). The result lies in (0, 1], rises with either input, and a low score on either side pulls it down — the
point of a harmonic mean. REALM's formula ``2·(α·s·(1−α)·r)/(α·s+(1−α)·r)`` is half the harmonic mean at α=0.5
and flips sign or divides by ~0 when r is negative, which Nemotron rewards usually are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.contracts import Message
from realm_cli.contracts import Reward, ScoreBatch


def harmonic_blend(similarity: float, reward: float, alpha: float = 0.5, tau: float = 1.0, eps: float = 1e-6) -> float:
    """The weighted harmonic mean of the mapped inputs; NaN in, NaN out (an unscored sample stays unscored)."""
    if math.isnan(similarity) or math.isnan(reward):
        return math.nan
    s = max(eps, min(1.0, (similarity + 1.0) / 2.0))
    z = reward / tau
    r = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))  # overflow-free sigmoid
    r = max(eps, r)
    return 1.0 / (alpha / s + (1.0 - alpha) / r)


@dataclass
class BlendConfig:
    alpha: float = 0.5  # weight of the similarity side; 1 - alpha weighs the reward side
    tau: float = 1.0  # reward temperature: r' = sigmoid(r / tau); use ~10 for Nemotron-scale rewards
    eps: float = 1e-6
    similarity: PluginSpec = plugin_field("reward", default_factory=lambda: PluginSpec("embedding"))
    reward: PluginSpec | None = plugin_field("reward", default=None)  # None: the default trained RM (see below)

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.tau <= 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")


DEFAULT_RM_DIR = "runs/cpu-minilm"  # where `realm train-rm --recipe cpu-minilm` (`make demo`) leaves its RM


def default_reward_spec() -> PluginSpec:
    """The reward member when none is configured: realm's default trained RM through the `bt` reward.

    Nothing that scores helpfulness ships inside the package (only an embedding model), so the offline default is
    the RM that `make demo` trains; without it, say how to get one rather than blend with a stand-in.
    """
    import os
    from pathlib import Path

    from realm_cli.errors import RealmError

    path = Path(os.environ.get("REALM_DEFAULT_RM", DEFAULT_RM_DIR))
    if not path.exists():
        raise RealmError(f"blend: no reward member configured and the default RM {path} does not exist; train it "
                         f"with `realm train-rm --recipe cpu-minilm`, or choose one, e.g. "
                         f"reward.reward.name=bt reward.reward.model=PATH or reward.reward.name=nim")
    from realm_cli import plugins

    return plugins.spec("reward", "bt", {"model": str(path)}, "reward.reward")


class BlendReward(Reward):
    """Weighted harmonic mean of similarity and a reward, both mapped into (0, 1] (defined for negative rewards)."""

    Config = BlendConfig

    def __init__(self, config=None):
        super().__init__(config)
        from realm_cli.rewards.build import build_reward

        reward_spec = self.config.reward or default_reward_spec()  # before any model loads: fail fast
        self.similarity = build_reward(self.config.similarity)
        try:
            self.reward = build_reward(reward_spec)
        except BaseException:
            self.similarity.close()
            raise

    def score_batch(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> ScoreBatch:
        c = self.config
        sims = self.similarity.score(prompts, responses)
        rewards = self.reward.score(prompts, responses)
        scores = [harmonic_blend(s, r, c.alpha, c.tau, c.eps) for s, r in zip(sims, rewards)]
        return ScoreBatch(scores, {"similarity": sims, "reward": rewards})

    def close(self) -> None:
        self.similarity.close()
        self.reward.close()
