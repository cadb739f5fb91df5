"""The ``rs`` trainer of ``realm align``: registration only; the algorithm is ``realm_cli.align.rs``."""

from realm_cli.align.rs import RsAligner
from realm_cli.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("rs", RsAligner, description="rejection sampling / RAFT: keep the top-m of k samples, SFT, repeat")
