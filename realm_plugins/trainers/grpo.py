"""The ``grpo`` trainer of ``realm align``: registration only; the algorithm is ``realm_cli.align.grpo``."""

from realm_cli.align.grpo import GrpoAligner
from realm_cli.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("grpo", GrpoAligner, description="GRPO (TRL GRPOTrainer) with the reward plugin as reward function")
