"""The ``rloo`` trainer of ``realm align``: registration only; the algorithm is ``realm_cli.align.grpo.RlooAligner``."""

from realm_cli.align.grpo import RlooAligner
from realm_cli.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("rloo", RlooAligner, description="RLOO (TRL RLOOTrainer) with the reward plugin as reward function")
