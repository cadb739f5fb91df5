"""The ``embedding`` reward: registration only; the reward is ``realm_cli.rewards.embedding.EmbeddingReward``."""

from realm_cli.hookspecs import hookimpl
from realm_cli.rewards.embedding import EmbeddingReward


@hookimpl
def register_rewards(register):
    register("embedding", EmbeddingReward, description=EmbeddingReward.__doc__)
