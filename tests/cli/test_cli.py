"""The CLI shell: fast help without heavy imports, one-line errors, the inspect commands."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from realm_cli.cli import build_app

HEAVY = ("torch", "transformers", "trl", "datasets", "peft", "sentence_transformers", "accelerate")


def test_help_imports_no_heavy_library():
    code = ("import sys\nfrom realm_cli import cli\nsys.argv = ['realm', '--help']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Train" in out and "Evaluate" in out  # rich help panels
    assert out.strip().splitlines()[-1] == "[]", out


def test_every_command_help_imports_no_heavy_library():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom realm_cli.cli import build_app\n"
            "app = build_app()\nimport typer.main\ngroup = typer.main.get_command(app)\n"
            "names = []\n"
            "for name, cmd in group.commands.items():\n"
            "    subs = getattr(cmd, 'commands', {}) or {None: None}\n"
            "    for sub in subs:\n"
            "        args = [name] + ([sub] if sub else []) + ['--help']\n"
            "        r = CliRunner().invoke(app, args)\n"
            "        assert r.exit_code == 0, (args, r.output)\n"
            "        names.append(' '.join(args[:-1]))\n"
            f"print(len(names), sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    count, heavy = out.stdout.strip().split(" ", 1)
    assert int(count) >= 10 and heavy == "[]", out.stdout


def test_user_errors_are_one_line_without_traceback():
    result = CliRunner().invoke(build_app(), ["recipes", "validate", "no-such-recipe-anywhere"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.strip().startswith("error: unknown recipe 'no-such-recipe-anywhere'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_console_script_reports_errors_the_same_way(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("# realm eval --recipe bad\ncommand: eval\nseed: lots\n")
    proc = subprocess.run([sys.executable, "-m", "realm_cli.cli", "recipes", "validate", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}: seed: expected an integer, got 'lots'"


def test_models_list_shows_where_aliases_resolve():
    result = CliRunner().invoke(build_app(), ["models", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    line = next(ln for ln in result.stdout.splitlines() if "minilm-l6" in ln)
    assert "packaged" in line and "sentence-transformers/all-MiniLM-L6-v2" in line


def test_recipes_list_and_show():
    from realm_cli import plugins

    names = plugins.registry().names("recipe")
    result = CliRunner().invoke(build_app(), ["recipes", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert all(n in result.stdout for n in names)
    if names:
        shown = CliRunner().invoke(build_app(), ["recipes", "show", names[0]])
        assert shown.exit_code == 0 and "command:" in shown.stdout


def test_shell_completion_is_offered_and_completes_commands():
    import os
    import subprocess
    import sys

    help_text = subprocess.run([sys.executable, "-m", "realm_cli.cli", "--help"], capture_output=True, text=True,
                               timeout=60).stdout
    assert "--install-completion" in help_text  # (--show-completion detects the parent shell, unknown under CI's sh)
    # what the bash function asks realm for when the user types `realm tra<TAB>`
    env = {**os.environ, "_REALM_COMPLETE": "complete_bash", "COMP_WORDS": "realm tra", "COMP_CWORD": "1"}
    words = subprocess.run([sys.executable, "-m", "realm_cli.cli"], env=env, capture_output=True, text=True, timeout=60)
    assert "train-rm" in words.stdout, (words.stdout, words.stderr)


def test_listings_print_json_with_a_stable_schema():
    from typer.testing import CliRunner

    from realm_cli.cli import build_app

    def run(*args):
        result = CliRunner().invoke(build_app(), [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    models = run("models", "list")
    assert models["schema"] == "realm.models.v1" and {"alias", "source", "location", "hub_id", "description"} == set(
        models["models"][0]) and any(m["alias"] == "minilm-l6" for m in models["models"])
    listed = run("recipes", "list")
    assert listed["schema"] == "realm.recipes.v1"
    assert all(set(r) == {"name", "plugin", "command", "launch", "description", "header", "error"}
               for r in listed["recipes"])
    assert {r["name"]: r["command"] for r in listed["recipes"]}["cpu-minilm"] == "train-rm"
    shown = run("recipes", "show", "cpu-minilm")
    assert shown["schema"] == "realm.recipe.v1" and shown["recipe"]["command"] == "train-rm"
    assert run("plugins")["schema"] == "realm.plugins.v1"


def _pairs_file(path, subsets=False):
    rows = [{"prompt": f"Question {i}", "chosen": "A careful, kind answer. " * (1 + i % 2), "rejected": f"No {i}.",
             "id": f"r{i}", **({"subset": "llmbar-natural"} if subsets else {})} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_help_examples_run_and_json_prints_the_metrics(tmp_path, tiny_bert_dir):
    """The override each eval help suggests is one the bt reward takes (issue #16): run it (the model path swapped
    for a tiny model), with --json: one object, schema realm.eval.v1, metrics = what metrics.json holds."""
    import re

    for command, data in (("preference", _pairs_file(tmp_path / "pairs.jsonl")),
                          ("reward-bench", _pairs_file(tmp_path / "rb.jsonl", subsets=True))):
        help_text = CliRunner().invoke(build_app(), ["eval", command, "--help"], env={"COLUMNS": "250"}).output
        examples = re.findall(r"(reward\.[a-z_]+)=runs/cpu-minilm", help_text)
        assert examples, help_text
        out = tmp_path / command
        result = CliRunner().invoke(build_app(), ["eval", command, "--reward", "bt", "--data", str(data), "-o", str(out),
                                                  "--json", f"{examples[0]}={tiny_bert_dir}", "plot=false",
                                                  "ci_resamples=50"])
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert printed["schema"] == "realm.eval.v1" and printed["output_dir"] == str(out)
        saved = json.loads((out / "metrics.json").read_text())
        assert printed["metrics"] == json.loads(json.dumps(saved).replace("NaN", "null"))
        assert command in printed["metrics"]
