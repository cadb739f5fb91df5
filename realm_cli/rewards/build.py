"""Build a reward plugin from a validated spec (the ``Reward`` contract itself is in ``realm_cli.contracts``)."""

from __future__ import annotations

from realm_cli.config import PluginSpec
from realm_cli.contracts import Reward


def build_reward(spec: PluginSpec) -> Reward:
    """Instantiate the reward plugin named by a validated recipe block."""
    from realm_cli import plugins

    cls = plugins.lookup("reward", spec.name)
    return cls(spec.options)
