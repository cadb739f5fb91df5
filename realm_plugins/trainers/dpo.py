"""The ``dpo`` trainer of ``realm align``: registration only; the algorithm is ``realm_cli.align.dpo``."""

from realm_cli.align.dpo import DpoAligner
from realm_cli.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("dpo", DpoAligner, description="on-policy reward-ranked DPO (iterative), or offline DPO with --reward none")
