"""Build a reward plugin from a spec (the ``Reward`` contract itself is in ``realm_cli.contracts``)."""

from __future__ import annotations

from realm_cli.config import PluginSpec
from realm_cli.contracts import Reward


def build_reward(spec: PluginSpec) -> Reward:
    """Instantiate the reward plugin a recipe block names (raw options, e.g. a ``Config`` default, validated)."""
    from realm_cli import plugins

    return plugins.instance("reward", spec)
