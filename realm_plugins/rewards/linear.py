"""The `linear` reward: realm's learned combiner over [reward, similarity] (train it with the linear-combiner
trainer: `realm train-rm --recipe linear-combiner-shp`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.contracts import Message
from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Reward, ScoreBatch


@dataclass
class LinearConfig:
    path: str = "runs/linear-combiner-shp"  # the combiner's directory (combiner.json + combiner.safetensors)
    # Members default to the ones the combiner was trained with; override e.g. to point nim at another base_url.
    reward: PluginSpec | None = plugin_field("reward", default=None)
    similarity: PluginSpec | None = plugin_field("reward", default=None)


class LinearReward(Reward):
    """Learned MLP combiner over [reward, similarity] features, normalised as at training (BT-trained)."""

    Config = LinearConfig

    def __init__(self, config=None):
        super().__init__(config)
        from pathlib import Path

        from realm_cli import plugins
        from realm_cli.rewards import combiner
        from realm_cli.rewards.build import build_reward

        self.combiner, meta = combiner.load(Path(self.config.path).expanduser())
        where = f"{self.config.path}/{combiner.META_FILE}: "
        # the members it was trained with, saved as recipe blocks {name, **options}
        reward_spec = self.config.reward or plugins.spec("reward", meta["reward"], where=where + "reward")
        similarity_spec = self.config.similarity or plugins.spec("reward", meta["similarity"],
                                                                 where=where + "similarity")
        self.members = [build_reward(reward_spec)]
        try:
            self.members.append(build_reward(similarity_spec))
        except BaseException:
            self.close()
            raise

    def score_batch(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> ScoreBatch:
        rewards, sims = (m.score(prompts, responses) for m in self.members)
        rows = [[r, s] for r, s in zip(rewards, sims)]
        finite = [i for i, row in enumerate(rows) if all(map(math.isfinite, row))]
        scores = [math.nan] * len(rows)  # a sample a member could not score stays unscored
        for i, value in zip(finite, self.combiner([rows[i] for i in finite]) if finite else []):
            scores[i] = value
        return ScoreBatch(scores, {"reward": rewards, "similarity": sims})

    def close(self) -> None:
        for m in self.members:
            m.close()


@hookimpl
def register_rewards(register):
    register("linear", LinearReward, description=LinearReward.__doc__)
