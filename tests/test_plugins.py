"""Plugin loading through the `realm` entry-point group, with a third-party distribution simulated on disk."""

import json
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from realm_cli import plugins

PLUGIN_MODULE = '''
from dataclasses import dataclass
from pathlib import Path

from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Reward, ScoreBatch


class ShoutReward(Reward):
    """Count exclamation marks."""

    @dataclass
    class Config:
        weight: float = 1.0

    def score_batch(self, prompts, responses):
        return ScoreBatch([self.config.weight * r.count("!") for r in responses])


@hookimpl
def register_rewards(register):
    register("{reward_name}", ShoutReward)


@hookimpl
def register_recipes(register):
    register("shout-eval", Path(__file__).with_name("shout-eval.yaml"))
'''

RECIPE = """\
# realm eval --recipe shout-eval
command: eval
description: a third-party recipe
evaluators:
  - name: preference
    reward: {name: shout, weight: 2}
"""


def make_distribution(root, dist="realm-shout", module="realm_shout", reward_name="shout", body=None):
    """Write an installed-looking distribution (dist-info + entry point) that importlib.metadata discovers."""
    (root / f"{module}.py").write_text(body if body is not None else PLUGIN_MODULE.replace("{reward_name}", reward_name))
    (root / "shout-eval.yaml").write_text(RECIPE)
    info = root / f"{dist.replace('-', '_')}-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(f"[realm]\n{module} = {module}\n")
    return root


@pytest.fixture
def third_party(tmp_path, monkeypatch, fresh_plugins):
    make_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("realm_shout", None)


def cli(*args):
    from realm_cli.cli import build_app

    return CliRunner().invoke(build_app(), list(args))


def test_builtins_come_through_entry_points(fresh_plugins):
    entries = plugins.registry().entries()
    assert entries, "realm's own entry points registered nothing"
    assert all(e.distribution == "realm-cli" for e in entries)
    assert {e.plugin.split(".")[0] for e in entries} == {"realm_plugins"}


def test_third_party_reward_and_recipe_appear_and_work(third_party):
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    listed = {(p["kind"], p["name"]): p for p in json.loads(result.stdout)["plugins"]}
    assert listed[("reward", "shout")]["distribution"] == "realm-shout"
    assert listed[("reward", "shout")]["version"] == "0.3.1"
    assert listed[("reward", "shout")]["description"] == "Count exclamation marks."
    assert listed[("recipe", "shout-eval")]["plugin"] == "realm_shout"

    from realm_cli.recipes import recipe as recipes
    from realm_cli.rewards.build import build_reward

    recipe = recipes.load("shout-eval")
    spec = recipe.evaluators[0].options.reward
    assert spec.options.weight == 2.0
    reward = build_reward(spec)
    assert reward.score([[{"role": "user", "content": "hi"}]] * 2, ["yes!!", "no"]) == [4.0, 0.0]


def test_load_plugins_env_limits_distributions(third_party, monkeypatch):
    monkeypatch.setenv("REALM_LOAD_PLUGINS", "")
    plugins.reset()
    assert "shout" not in plugins.registry().names("reward")
    assert plugins.registry().entries(), "built-ins must still load"
    monkeypatch.setenv("REALM_LOAD_PLUGINS", "realm-shout")
    plugins.reset()
    assert "shout" in plugins.registry().names("reward")
    assert not plugins.state().failures
    monkeypatch.setenv("REALM_LOAD_PLUGINS", "realm-shout,realm-shuot")  # a typo loads nothing: said, not silent
    plugins.reset()
    failures = plugins.state().failures
    assert [(f.distribution, f.plugin) for f in failures] == [("REALM_LOAD_PLUGINS", "realm-shuot")]
    assert "realm-shout" in failures[0].error and "shout" in plugins.registry().names("reward")


def test_recipes_show_prints_recipes_not_any_file(tmp_path):
    secret = tmp_path / "notes.txt"
    secret.write_text("password: hunter2\n")
    result = cli("recipes", "show", str(secret))
    assert result.exit_code == 2 and "hunter2" not in result.output and "not a recipe" in result.output
    assert "command: train-rm" in cli("recipes", "show", "cpu-minilm").output


def test_broken_plugin_is_reported_and_cli_still_works(tmp_path, monkeypatch, fresh_plugins):
    make_distribution(tmp_path, dist="realm-broken", module="realm_broken", body="import does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    failures = json.loads(result.stdout)["failures"]
    assert failures == [{"distribution": "realm-broken", "plugin": "realm_broken",
                         "error": "ModuleNotFoundError: No module named 'does_not_exist_anywhere'"}]
    assert cli("recipes", "list").exit_code == 0


def test_duplicate_name_from_two_distributions_is_an_error_naming_both(tmp_path, monkeypatch, fresh_plugins):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    make_distribution(first, dist="realm-one", module="realm_one")
    make_distribution(second, dist="realm-two", module="realm_two")
    monkeypatch.syspath_prepend(str(first))
    monkeypatch.syspath_prepend(str(second))
    state = plugins.state()
    messages = [f.error for f in state.failures]
    assert any("'shout' is registered twice" in m and "realm_one" in m and "realm_two" in m for m in messages), messages


def test_register_commands_hook_adds_a_command(tmp_path, monkeypatch, fresh_plugins):
    body = textwrap.dedent('''
        from realm_cli.hookspecs import hookimpl

        @hookimpl
        def register_commands(app):
            @app.command()
            def hello(name: str):
                """Say hello."""
                print(f"hello {name}")
    ''')
    make_distribution(tmp_path, dist="realm-hello", module="realm_hello", body=body)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("hello", "world")
    assert result.exit_code == 0 and "hello world" in result.output
