"""``realm align --algo ppo``: PPO with a value head, GAE, clipped losses and a KL penalty to the frozen start policy.

TRL 1.x no longer ships PPOTrainer, so the update itself lives in ``realm_cli.align.ppo`` (small, on torch); this plugin
feeds it rollouts: each step samples ``k`` responses for ``prompts_per_step`` prompts, scores the decoded text with
the reward (samples it cannot score are left out of the step and counted) and runs one PPO update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from realm_cli.align.job import AlignJob, AlignOptions
from realm_cli.hookspecs import hookimpl
from realm_cli.align.ppo import PpoSettings


@dataclass
class PpoOptions(AlignOptions, PpoSettings):
    steps_per_round: int = 8
    prompts_per_step: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.steps_per_round < 1 or self.prompts_per_step < 1 or self.ppo_epochs < 1 or self.minibatch_size < 1:
            raise ValueError("steps_per_round, prompts_per_step, ppo_epochs and minibatch_size must be at least 1")


class PpoAligner(AlignJob):
    Config = PpoOptions

    def _learner(self):
        if getattr(self, "learner", None) is None:
            from dataclasses import fields

            from realm_cli.align.ppo import PpoLearner

            settings = PpoSettings(**{f.name: getattr(self.config, f.name) for f in fields(PpoSettings)})
            self.learner = PpoLearner(self.model, self.reference, self.tokenizer.pad_token_id, settings,
                                      self.config.learning_rate, autocast=self.autocast)
        return self.learner

    def extra_state(self) -> dict:
        return {"ppo": self._learner().state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self._learner().load_state_dict(state["ppo"])

    def train_round(self, round_index, prompts):
        from realm_cli.align.ppo import Rollout

        learner = self._learner()
        n = min(self.config.prompts_per_step, len(prompts))
        steps = []
        for step in range(self.config.steps_per_round):
            batch = [prompts[(step * n + i) % len(prompts)] for i in range(n)]
            samples, scores = self.sample_and_score(batch, self.config.k)
            keep = [i for i, v in enumerate(scores.values) if math.isfinite(v)]
            rollout = Rollout([samples.query_ids[i] for i in keep], [samples.response_ids[i] for i in keep],
                              [scores.values[i] for i in keep])
            stats = learner.step(rollout)
            steps.append(self.log(**stats, unscored=scores.failed))
        mean = lambda key: sum(s[key] for s in steps) / len(steps)  # noqa: E731
        return {"reward": mean("reward"), "kl": mean("kl"), "kl_coef": steps[-1]["kl_coef"],
                "length": mean("length"), "pg_loss": mean("pg_loss"), "vf_loss": mean("vf_loss"),
                "unscored": sum(s["unscored"] for s in steps)}


@hookimpl
def register_trainers(register):
    register("ppo", PpoAligner, description="PPO (value head, GAE, clipped losses, KL to the start policy)")
