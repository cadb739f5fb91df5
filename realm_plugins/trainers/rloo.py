"""``realm align --algo rloo``: TRL's RLOOTrainer (REINFORCE with a leave-one-out baseline over ``k`` samples),
the reward plugin wrapped exactly as for GRPO."""

from __future__ import annotations

from dataclasses import dataclass

from realm_cli.hookspecs import hookimpl
from realm_plugins.trainers.grpo import GrpoAligner, GrpoOptions


@dataclass
class RlooOptions(GrpoOptions):
    beta: float = 0.05  # RLOO folds the KL to the reference into the reward


class RlooAligner(GrpoAligner):
    Config = RlooOptions
    trl_trainer = "RLOOTrainer"
    trl_config = "RLOOConfig"

    def extra_trl_args(self) -> dict:
        return {"beta": self.config.beta, "num_iterations": self.config.num_iterations}


@hookimpl
def register_trainers(register):
    register("rloo", RlooAligner, description="RLOO (TRL RLOOTrainer) with the reward plugin as reward function")
