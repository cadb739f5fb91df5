"""A reward named on the command line (``--reward blend reward.alpha=0.3``) validated like a recipe's block."""

from __future__ import annotations

from realm_cli.config import ConfigError, PluginSpec, merge, parse_overrides, validate
from realm_cli.errors import RealmError


def spec_from_cli(name: str, overrides: list[str] | None) -> PluginSpec:
    """``reward.KEY=VALUE`` overrides set the reward's options; nested member rewards use deeper keys
    (``reward.reward.name=nim reward.reward.base_url=...``)."""
    from realm_cli.recipes.recipe import _plugin_config

    tree = parse_overrides(list(overrides or []))
    stray = [k for k in tree if k != "reward"]
    if stray:
        raise RealmError(f"override {stray[0]!r}: only reward options can be set here, e.g. reward.alpha=0.3")
    options = tree.get("reward", {})
    if not isinstance(options, dict):
        raise RealmError("override 'reward=...': use --reward NAME to pick the reward, reward.KEY=VALUE for options")
    if "name" in options:
        raise RealmError("override 'reward.name': use --reward NAME to pick the reward")
    try:
        return validate(PluginSpec, merge({"name": name}, options), "reward", _plugin_config, "reward")
    except ConfigError as exc:
        raise RealmError(str(exc)) from None


def spec_from_dict(block: dict, where: str) -> PluginSpec:
    """A saved ``{name, **options}`` block (e.g. from a trained combiner's metadata) validated like a recipe's."""
    from realm_cli.recipes.recipe import _plugin_config

    try:
        return validate(PluginSpec, block, "reward", _plugin_config, "reward")
    except ConfigError as exc:
        raise RealmError(f"{where}: {exc}") from None
