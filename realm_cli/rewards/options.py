"""A reward named on the command line (``--reward blend reward.alpha=0.3``): its ``reward.KEY=VALUE`` arguments."""

from __future__ import annotations

from realm_cli.config import PluginSpec, parse_overrides
from realm_cli.errors import RealmError


def reward_overrides(overrides: list[str] | None) -> dict:
    """``reward.KEY=VALUE`` arguments as the reward's options (nested member rewards use deeper keys:
    ``reward.reward.name=nim reward.reward.base_url=...``); anything else is an error saying so."""
    tree = parse_overrides(list(overrides or []))
    stray = [k for k in tree if k != "reward"]
    if stray:
        raise RealmError(f"override {stray[0]!r}: only reward options can be set here, e.g. reward.alpha=0.3")
    options = tree.get("reward", {})
    if not isinstance(options, dict):
        raise RealmError("override 'reward=...': use --reward NAME to pick the reward, reward.KEY=VALUE for options")
    if "name" in options:
        raise RealmError("override 'reward.name': use --reward NAME to pick the reward")
    return options


def spec_from_cli(name: str, overrides: list[str] | None) -> PluginSpec:
    """``--reward NAME reward.KEY=VALUE ...`` as a validated spec (through ``plugins.spec``, like a recipe block)."""
    from realm_cli import plugins

    return plugins.spec("reward", name, reward_overrides(overrides), "reward")
