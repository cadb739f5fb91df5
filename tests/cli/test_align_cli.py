"""`realm align --algo A --reward R reward.KEY=V --rounds N`: the recipe that runs, built in memory, without running
it (no derived file is written anywhere)."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from realm_cli.cli import build_app
from realm_cli.cli.align import build_recipe
from realm_cli.config import to_dict
from realm_cli.errors import RealmError


def test_algo_alone_picks_the_default_cpu_recipe():
    recipe = build_recipe(None, "ppo", None, ["trainer.k=2"])
    assert recipe.name == "align-ppo-smollm2-cpu" and recipe.source.endswith("align-ppo-smollm2-cpu.yaml")
    assert recipe.trainer.name == "ppo" and recipe.trainer.options.k == 2


def test_reward_replaces_the_whole_reward_block_and_takes_its_options_from_overrides():
    recipe = build_recipe(None, "dpo", "blend", ["reward.alpha=0.3", "reward.reward.name=nim", "trainer.rounds=1"])
    reward = recipe.reward
    assert (reward.name, reward.options.alpha, reward.options.reward.name) == ("blend", 0.3, "nim")
    assert to_dict(reward)["reward"]["name"] == "nim"  # nothing of the recipe's own reward block is left
    assert recipe.trainer.name == "dpo" and recipe.trainer.options.rounds == 1
    assert recipe.header.startswith("realm align --recipe align-dpo-smollm2-cpu")


def test_reward_none_drops_the_reward_for_offline_dpo():
    assert build_recipe("align-dpo-smollm2-cpu", None, "none", []).reward is None


def test_switching_algo_keeps_the_options_the_new_algorithm_accepts():
    trainer = build_recipe("align-dpo-smollm2-cpu", "rs", None, []).trainer
    assert trainer.name == "rs" and not hasattr(trainer.options, "beta") and trainer.options.k == 4


def test_a_bad_reward_option_fails_before_anything_runs():
    with pytest.raises(RealmError, match="alpah"):
        build_recipe(None, "dpo", "blend", ["reward.alpah=0.3"])
    with pytest.raises(RealmError, match="--recipe NAME, or --algo"):
        build_recipe(None, None, "blend", [])


def test_flag_paths_write_no_temporary_file(monkeypatch, tmp_path):
    """`realm align --algo/--reward` and `realm eval <subcommand>` build their recipe in memory: no mkdtemp."""
    import tempfile

    def refuse(*args, **kwargs):
        raise AssertionError("a command wrote a temporary recipe")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(tempfile, "TemporaryDirectory", refuse)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for args in (["align", "--algo", "rs", "--reward", "embedding", "reward.batch_size=8", "--rounds", "2",
                  "--dry-run"],
                 ["eval", "reward-bench", "--reward", "embedding", "--data", "llmbar", "--dry-run"],
                 ["eval", "preference", "--reward", "embedding", "--data", "hh-rlhf", "--dry-run"]):
        result = CliRunner().invoke(build_app(), args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
    assert list(tmp_path.iterdir()) == []


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


@pytest.mark.parametrize("command", [["align", "--algo", "rs", "--reward", "embedding"],
                                     ["align", "--recipe", "align-dpo-smollm2-cpu"],
                                     ["train-rm", "--recipe", "cpu-minilm"]])
@pytest.mark.parametrize("flag", ["-o", "--output-dir"])
def test_output_dir_flag_sets_the_recipes_output_dir(tmp_path, command, flag):
    target = str(tmp_path / "my-run")
    result = CliRunner().invoke(build_app(), [*command, flag, target, "--dry-run"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output.split("\n", 1)[1])
    assert resolved["output_dir"] == target
    assert not (tmp_path / "my-run").exists()  # a dry run writes nothing
