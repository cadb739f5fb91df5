"""`realm align --algo A --reward R reward.KEY=V --rounds N`: the recipe that runs, without running it."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from realm_cli.cli.align_flags import derive
from realm_cli.cli import build_app
from realm_cli.errors import RealmError


def _derived(ref: str) -> dict:
    return yaml.safe_load(open(ref).read())


def test_algo_alone_picks_the_default_cpu_recipe():
    ref, rest = derive(None, "ppo", None, ["trainer.k=2"])
    assert ref == "align-ppo-smollm2-cpu" and rest == ["trainer.k=2"]


def test_reward_replaces_the_whole_reward_block_and_takes_its_options_from_overrides():
    ref, rest = derive(None, "dpo", "blend", ["reward.alpha=0.3", "reward.reward.name=nim", "trainer.rounds=1"])
    recipe = _derived(ref)
    assert recipe["reward"] == {"name": "blend", "alpha": 0.3, "reward": {"name": "nim"}}
    assert rest == ["trainer.rounds=1"]
    assert recipe["trainer"]["name"] == "dpo"
    assert open(ref).readline().startswith("# realm align --recipe align-dpo-smollm2-cpu")


def test_reward_none_drops_the_reward_for_offline_dpo():
    ref, _ = derive("align-dpo-smollm2-cpu", None, "none", [])
    assert "reward" not in _derived(ref)


def test_switching_algo_keeps_the_options_the_new_algorithm_accepts():
    ref, _ = derive("align-dpo-smollm2-cpu", "rs", None, [])
    trainer = _derived(ref)["trainer"]
    assert trainer["name"] == "rs" and "beta" not in trainer and trainer["k"] == 4


def test_a_bad_reward_option_fails_before_anything_runs():
    with pytest.raises(RealmError, match="alpah"):
        derive(None, "dpo", "blend", ["reward.alpah=0.3"])
    with pytest.raises(RealmError, match="--recipe NAME, or --algo"):
        derive(None, None, "blend", [])


def test_cli_dry_run_shows_the_resolved_recipe():
    result = CliRunner().invoke(build_app(), ["align", "--algo", "grpo", "--reward", "embedding", "--rounds", "3",
                                      "reward.batch_size=8", "--dry-run"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output.split("\n", 1)[1])
    assert resolved["trainer"]["name"] == "grpo" and resolved["trainer"]["rounds"] == 3
    assert resolved["reward"]["name"] == "embedding" and resolved["reward"]["batch_size"] == 8


def test_every_shipped_align_recipe_validates():
    from realm_cli.recipes import recipe as recipes

    names = [n for n in __import__("realm_cli").plugins.registry().names("recipe") if n.startswith("align-")]
    assert {f"align-{a}-smollm2-cpu" for a in ("dpo", "ppo", "rs", "grpo", "rloo")} <= set(names)
    for name in names:
        assert recipes.load(name).trainer.name in ("dpo", "ppo", "rs", "grpo", "rloo")
