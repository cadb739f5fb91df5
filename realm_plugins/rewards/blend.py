"""The ``blend`` reward: registration only; the reward is ``realm_cli.rewards.blend.BlendReward``."""

from realm_cli.hookspecs import hookimpl
from realm_cli.rewards.blend import BlendReward


@hookimpl
def register_rewards(register):
    register("blend", BlendReward, description=BlendReward.__doc__)
