"""The ``ppo`` trainer of ``realm align``: registration only; the algorithm is ``realm_cli.align.ppo``."""

from realm_cli.align.ppo import PpoAligner
from realm_cli.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("ppo", PpoAligner, description="PPO (value head, GAE, clipped losses, KL to the start policy)")
