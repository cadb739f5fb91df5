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
    assert argv[0] == "realm" and argv[1] in recipes.VERBS.values()
    assert argv[argv.index("--recipe") + 1] == name, f"{name}: header {recipe.header!r} runs another recipe"
    assert argv[1] == recipes.VERBS[recipe.command]  # pipelines run under `realm run`


def write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_resolved_recipe_is_saved_with_overrides(tmp_path):
    ref = write(tmp_path, "# realm eval --recipe r.yaml\ncommand: eval\noutput_dir: out/{name}\nseed: 1\n"
                          "evaluators: [preference]\n")
    recipe = recipes.load(ref, ["seed=7", f"output_dir={tmp_path}/runs/{{name}}"])
    assert recipe.resolved_output_dir() == tmp_path / "runs" / "r"
    saved = recipes.save_resolved(recipe, recipe.resolved_output_dir())
    text = saved.read_text()
    assert text.startswith("# realm eval --recipe r.yaml\n")
    assert yaml.safe_load(text)["seed"] == 7


@pytest.mark.parametrize("body, message", [
    ("command: eval\nevaluators: [preference]\n", "first line must be a comment with the command"),
    ("# realm eval --recipe r\ncommand: evaluate\n", "command: expected one of"),
    ("# realm eval --recipe r\ncommand: eval\nsede: 3\n", "sede: unknown key (did you mean 'seed'?)"),
    ("# realm eval --recipe r\ncommand: eval\nevaluators: [preference]\nlaunch: {accelerate_config: nope}\n",
     "launch.accelerate_config"),
    ("# realm align --recipe r\ncommand: align\ntrainer: dpo\nreward: {name: no-such-reward}\n",
     "reward.name: unknown reward"),
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

    ref = write(tmp_path, "# realm eval --recipe r.yaml\ncommand: eval\nevaluators: [preference]\n")
    with pytest.raises(RealmError, match="is a eval recipe: run it with `realm eval --recipe r`"):
        runner.run("train-rm", ref, [])
    pipe = write(tmp_path, "# realm run --recipe p.yaml\ncommand: pipeline\nsteps: [{run: report}]\n", "p.yaml")
    with pytest.raises(RealmError, match="is a pipeline recipe: run it with `realm run --recipe p`"):
        runner.run("eval", pipe, [])


@pytest.mark.parametrize("body, message", [
    ("# realm train-rm --recipe r\ncommand: train-rm\ndata: {train: [hh-rlhf]}\n", "r.yaml: trainer: required"),
    ("# realm train-rm --recipe r\ncommand: train-rm\ntrainer: bt\n", "r.yaml: data: required"),
    ("# realm train-rm --recipe r\ncommand: train-rm\ndata: {train: [hh-rlhf]}\ntrainer: dpo\n",
     "r.yaml: trainer.name: trainer 'dpo' serves `realm align`, not `realm train-rm`"),
    ("# realm align --recipe r\ncommand: align\n", "r.yaml: trainer: required"),
    ("# realm eval --recipe r\ncommand: eval\nevaluators: []\n", "r.yaml: evaluators: at least one evaluator"),
    ("# realm eval --recipe r\ncommand: eval\nevaluators: [preference]\ntrainer: bt\n",
     "r.yaml: trainer: unknown key (allowed: command, description, output_dir, seed, launch, evaluators)"),
    ("# realm run --recipe r\ncommand: pipeline\nsteps: []\n", "r.yaml: steps: a pipeline needs at least one step"),
    ("# realm eval --recipe r\ndescription: no command\n", "r.yaml: command: required"),
])
def test_each_command_has_its_own_schema_checked_at_validation(tmp_path, body, message):
    """A recipe missing what its command needs fails at `realm recipes validate`, as one line, not at run time."""
    from typer.testing import CliRunner

    from realm_cli.cli import build_app

    result = CliRunner().invoke(build_app(), ["recipes", "validate", write(tmp_path, body)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_resolved_recipe_loads_back_with_its_name_and_output_dir(tmp_path):
    ref = write(tmp_path, f"# realm eval --recipe {tmp_path}/my-eval.yaml\ncommand: eval\n"
                          f"output_dir: {tmp_path}/runs/{{name}}\nevaluators: [preference]\n", "my-eval.yaml")
    recipe = recipes.load(ref, ["seed=3"])
    saved = recipes.save_resolved(recipe, recipe.resolved_output_dir())
    back = recipes.load(str(saved))
    assert (back.name, back.header, back.seed) == ("my-eval", recipe.header, 3)
    assert back.resolved_output_dir() == tmp_path / "runs" / "my-eval" == saved.parent
    text = saved.read_text()
    assert text.splitlines()[1] == f"# resolved from {ref} (recipe my-eval)"
    assert recipes.resolved_text(back).splitlines()[2:] == text.splitlines()[2:]
    recipes.save_resolved(back, back.resolved_output_dir())  # what a launched re-entry does: the file stays
    assert saved.read_text() == text


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """474 bytes of nested aliases expand to ~10^9 nodes; the loader refuses aliases before expanding anything."""
    import time

    from realm_cli.recipes import recipe as recipes_

    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        levels.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("# realm train-rm --recipe bomb\ncommand: train-rm\n" + "\n".join(levels) + "\n")
    start = time.monotonic()
    with pytest.raises(RealmError, match=r"bomb.yaml:\d+: invalid YAML: aliases \(\*a\) are not allowed") as info:
        recipes_.load(str(bomb))
    assert time.monotonic() - start < 5 and "\n" not in str(info.value)
    from realm_cli.config import parse_overrides, validate

    # an override value is YAML too: with an alias it stays the plain text it was, and is validated as such
    raw = parse_overrides(["trainer.epochs=[&a [1, 1], *a, *a]"])["trainer"]["epochs"]
    with pytest.raises(RealmError, match="trainer.epochs: expected"):
        validate(float, raw, "trainer.epochs")


def test_a_refused_run_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from realm_cli.cli import build_app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(build_app(), ["train-rm", "--recipe", "gpt2-12gb"])  # a GPU recipe on this CPU
    assert result.exit_code == 2 and "GPU" in result.output
    assert list(tmp_path.iterdir()) == []  # no runs/gpt2-12gb/recipe.yaml left behind
    (tmp_path / "runs" / "gpt2-12gb").mkdir(parents=True)
    (tmp_path / "runs" / "gpt2-12gb" / "notes.txt").write_text("mine")
    CliRunner().invoke(build_app(), ["train-rm", "--recipe", "gpt2-12gb"])
    assert [p.name for p in (tmp_path / "runs" / "gpt2-12gb").iterdir()] == ["notes.txt"]  # its files stay, only
