"""Every shipped recipe validates and says how to run it; recipe errors name the file and key path."""

import shlex

import pytest
import yaml

from realm_cli import plugins

from realm_cli.recipes import recipe as recipes
from realm_cli.errors import RealmError


def shipped():
    return [e.name for e in plugins.registry().entries("recipe") if e.distribution == "realm-cli"]


@pytest.mark.parametrize("name", shipped())
def test_shipped_recipe_validates_and_header_is_its_command(name):
    recipe = recipes.load(name)
    argv = shlex.split(recipe.header)
    assert argv[0] == "realm" and argv[1] in recipes.COMMANDS
    assert argv[argv.index("--recipe") + 1] == name, f"{name}: header {recipe.header!r} runs another recipe"
    assert recipe.command in argv[1:3] or recipe.command == "pipeline"


def write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_resolved_recipe_is_saved_with_overrides(tmp_path):
    ref = write(tmp_path, "# realm eval --recipe r.yaml\ncommand: eval\noutput_dir: out/{name}\nseed: 1\n")
    recipe = recipes.load(ref, ["seed=7", f"output_dir={tmp_path}/runs/{{name}}"])
    assert recipe.resolved_output_dir() == tmp_path / "runs" / "r"
    saved = recipes.save_resolved(recipe, recipe.resolved_output_dir())
    text = saved.read_text()
    assert text.startswith("# realm eval --recipe r.yaml\n")
    assert yaml.safe_load(text)["seed"] == 7


@pytest.mark.parametrize("body, message", [
    ("command: eval\n", "first line must be a comment with the command"),
    ("# realm eval --recipe r\ncommand: evaluate\n", "command: expected one of"),
    ("# realm eval --recipe r\ncommand: eval\nsede: 3\n", "sede: unknown key (did you mean 'seed'?)"),
    ("# realm eval --recipe r\ncommand: eval\nlaunch: {accelerate_config: nope}\n", "launch.accelerate_config"),
    ("# realm eval --recipe r\ncommand: eval\nreward: {name: no-such-reward}\n", "reward.name: unknown reward"),
    ("# realm eval --recipe r\ncommand: eval\n  bad: [indent\n", "r.yaml:3: invalid YAML"),
    ("# realm eval --recipe r\n- a list\n", "must be a YAML mapping"),
])
def test_recipe_errors_are_located(tmp_path, body, message):
    with pytest.raises(RealmError) as err:
        recipes.load(write(tmp_path, body))
    assert message in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_unknown_recipe_name_suggests(tmp_path):
    with pytest.raises(RealmError, match="unknown recipe"):
        recipes.load("definitely-not-a-recipe")
    with pytest.raises(RealmError, match="does not exist"):
        recipes.load(str(tmp_path / "missing.yaml"))


def test_recipe_run_under_the_wrong_command_says_which(tmp_path):
    from realm_cli.recipes import runner

    ref = write(tmp_path, "# realm eval --recipe r.yaml\ncommand: eval\n")
    with pytest.raises(RealmError, match="is a eval recipe: run it with `realm eval --recipe r`"):
        runner.run("train-rm", ref, [])
