"""The ``ensemble`` reward: registration only; the reward is ``realm_cli.rewards.ensemble.EnsembleReward``."""

from realm_cli.hookspecs import hookimpl
from realm_cli.rewards.ensemble import EnsembleReward


@hookimpl
def register_rewards(register):
    register("ensemble", EnsembleReward, description=EnsembleReward.__doc__)
