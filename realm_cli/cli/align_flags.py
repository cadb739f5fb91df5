"""``realm align --algo A --reward R``: the recipe a run uses when the command line names the algorithm or reward.

``--reward`` replaces the recipe's whole ``reward:`` block (its options come from ``reward.KEY=VALUE`` overrides),
which dotted overrides alone cannot express (they merge into the old block). So the recipe is rewritten into a
derived YAML file with the same name and header, and that file is what runs (and what a launcher re-enters).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import yaml

from realm_cli import plugins
from realm_cli.recipes import recipe as recipes
from realm_cli.errors import RealmError

ALGOS = ("dpo", "ppo", "rs", "grpo", "rloo")


def default_recipe(algo: str) -> str:
    return f"align-{algo}-smollm2-cpu"


def derive(recipe: str | None, algo: str | None, reward: str | None, overrides: list[str]) -> tuple[str, list[str]]:
    """The recipe reference to run and the overrides left for it."""
    if recipe is None:
        if algo is None:
            raise RealmError("realm align: give --recipe NAME, or --algo (one of " + ", ".join(ALGOS) + ")")
        recipe = default_recipe(algo)
    path = recipes.find(recipe)
    raw, header = recipes.read(path)
    trainer = raw.get("trainer") if isinstance(raw.get("trainer"), dict) else {}
    switch = algo is not None and trainer.get("name") != algo
    if not switch and reward is None:
        return recipe, overrides
    if switch:
        raw["trainer"] = _trainer_block(trainer, algo)
    rest = overrides
    if reward is not None:
        raw["reward"] = {"name": reward}
        if reward != "none":
            from realm_cli.rewards.options import spec_from_cli

            mine = [o for o in overrides if o.split("=", 1)[0].startswith("reward.")]
            spec_from_cli(reward, mine)  # fails early, naming the bad reward option
            rest = [o for o in overrides if o not in mine]
            raw["reward"] = _nested(mine, reward)
        else:
            raw.pop("reward")
    out = Path(tempfile.mkdtemp(prefix="realm-align-")) / path.name
    text = yaml.safe_dump(raw, sort_keys=False)
    out.write_text(f"# {header or 'realm align --recipe ' + path.stem}\n# derived from {path}\n{text}")
    return str(out), rest


def _nested(overrides: list[str], name: str) -> dict:
    from realm_cli.config import parse_overrides, to_dict

    tree = parse_overrides(overrides).get("reward", {})
    return {"name": name, **_plain(to_dict(tree))}


def _plain(value):
    """RawOverride text back to YAML values, so the derived file reads like a hand-written recipe."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, str):
        loaded = yaml.safe_load(value) if value.strip() else ""
        return loaded if not isinstance(loaded, (dict, list)) else value
    return value


def _trainer_block(block: dict, algo: str) -> dict:
    """Switch the trainer plugin, keeping the options the new algorithm also accepts (sampling, rounds, ...)."""
    accepted = {f.name for f in dataclasses.fields(plugins.lookup("trainer", algo).Config)}
    return {"name": algo, **{k: v for k, v in block.items() if k in accepted}}
