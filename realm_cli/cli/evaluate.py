"""`realm eval`: one evaluator per subcommand, or several from a recipe (`realm eval --recipe R`).

Each subcommand writes the recipe its flags describe (shown by --dry-run, so it can be saved and re-run) and runs
it through the same runner as `realm eval --recipe`: every run leaves recipe.yaml and metrics.json behind.
Trailing ``key=value`` arguments are dotted overrides of the evaluator block, e.g. ``reward.path=runs/cpu-minilm``.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path

import typer
from typer.core import TyperGroup

from realm_cli.cli import options
from realm_cli.errors import RealmError


class EvalGroup(TyperGroup):
    """Lets `realm eval --recipe R key=value ...` take overrides although `eval` is a group of subcommands."""

    def parse_args(self, ctx, args):
        if not any(a in self.commands for a in args):
            ctx.meta["realm_eval_overrides"] = [a for a in args if "=" in a and not a.startswith("-")]
            args = [a for a in args if a not in ctx.meta["realm_eval_overrides"]]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=EvalGroup, help="Evaluate rewards and policies (RewardBench, TruthfulQA, preference pairs).",
                  invoke_without_command=True)

OVERRIDES = typer.Argument(None, help="Dotted overrides of the evaluator block, e.g. reward.path=runs/cpu-minilm.",
                           show_default=False)
OUTPUT = typer.Option(None, "--output-dir", "-o", help="Where results go (default runs/eval-<name>).")
LIMIT = typer.Option(None, "--limit", help="Use only the first N records of each dataset (quick runs).")


@app.callback()
def eval_root(ctx: typer.Context,
              recipe: str | None = typer.Option(None, "--recipe", "-r",
                                                help="Run every evaluator of an eval recipe, or a pipeline recipe."),
              dry_run: bool = options.DRY_RUN):
    """Evaluate rewards and policies. `realm eval --recipe R` runs an eval or pipeline recipe."""
    if ctx.invoked_subcommand is not None:
        if recipe is not None:
            raise RealmError("give either --recipe or a subcommand, not both")
        return
    if recipe is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    from realm_cli.recipes import recipe as recipes
    from realm_cli.recipes import runner

    overrides = ctx.meta.get("realm_eval_overrides", [])
    loaded = recipes.load(recipe, overrides)
    if loaded.command == "pipeline":
        from realm_cli.recipes import pipeline

        pipeline.run(loaded, dry_run=dry_run)
        return
    runner.run("eval", recipe, overrides, dry_run=dry_run)


def dataset_block(value: str, *, default_plugin: str, limit: int | None) -> dict:
    """``--data`` value -> a dataset block: a registered dataset name, a local path, or a hub id."""
    from realm_cli import plugins

    names = plugins.registry().names("dataset")
    if value in names:
        block = {"name": value}
    elif Path(value).expanduser().exists():
        block = {"name": default_plugin, "path": value}
    elif value.count("/") == 1 and not value.startswith((".", "/", "~")):
        block = {"name": "reward-bench" if value.startswith("allenai/reward-bench") else default_plugin,
                 "hub_id": value}
    else:
        raise RealmError(f"--data {value}: not a dataset name ({', '.join(names) or 'none registered'}), "
                         f"an existing path, or a hub id")
    if limit is not None:
        block["limit"] = limit
    return block


def run_evaluator(block: dict, overrides: list[str] | None, output_dir: str | None, dry_run: bool) -> dict | None:
    """Write the one-evaluator recipe these flags describe and run it like any `realm eval --recipe`."""
    import yaml

    from realm_cli.recipes import runner
    from realm_cli.config import merge, parse_overrides

    name = f"eval-{block['name']}"
    block = merge(block, parse_overrides(list(overrides or [])))
    recipe = {"command": "eval", "description": "written by the command line in its header",
              "output_dir": output_dir or f"runs/{name}", "evaluators": [block]}
    header = "# realm " + shlex.join(["eval", *sys.argv[2:]] if len(sys.argv) > 2 else ["eval", block["name"]])
    with tempfile.TemporaryDirectory(prefix="realm-eval-") as tmp:
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(header + "\n" + yaml.safe_dump(_plain(recipe), sort_keys=False), encoding="utf-8")
        try:
            return runner.run("eval", str(path), [], dry_run=dry_run)
        except RealmError as exc:
            raise RealmError(str(exc).replace(str(path), "command line")) from None


def _plain(obj):
    """RawOverride values (str subclasses) as plain YAML scalars."""
    import yaml

    from realm_cli.config import RawOverride

    if isinstance(obj, RawOverride):
        try:
            return yaml.safe_load(obj) if obj.strip() else ""
        except yaml.YAMLError:
            return str(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


@app.command("reward-bench")
def reward_bench(
    reward: str = typer.Option(..., "--reward", help="Reward plugin name (see `realm plugins`)."),
    data: list[str] = typer.Option(["reward-bench"], "--data",
                                   help="reward-bench (hub allenai/reward-bench), llmbar (the offline Chat Hard "
                                        "subsets), allenai/reward-bench-2, another dataset name, a file (either "
                                        "RewardBench schema), or a hub id. Repeatable."),
    protocol: str = typer.Option("auto", "--protocol", help="v1 (pairs), v2 (RewardBench 2 items), auto."),
    limit: int | None = LIMIT,
    output_dir: str | None = OUTPUT,
    dry_run: bool = options.DRY_RUN,
    overrides: list[str] = OVERRIDES,
):
    """Score RewardBench pairs with any reward: per-subset accuracy, weighted sections, overall (+ JSON, PNG)."""
    block = {"name": "reward-bench", "reward": {"name": reward}, "protocol": protocol,
             "data": [dataset_block(d, default_plugin="reward-bench", limit=limit) for d in data]}
    run_evaluator(block, overrides, output_dir, dry_run)


@app.command("truthfulqa")
def truthfulqa(
    models: list[str] = typer.Option(["smollm2-135m-instruct"], "--models", "--model", "-m",
                                     help="Causal LM alias, path or hub id; `--models A B C` compares several."),
    more_models: list[str] = typer.Argument(None, show_default=False, metavar="[MORE_MODELS | key=value]...",
                                            help="Further models after --models, and dotted overrides."),
    version: str = typer.Option("v1", "--version", help="v1 (817 questions) or current (790, adds MC0)."),
    limit: int | None = LIMIT,
    batch_size: int = typer.Option(32, "--batch-size", help="Choices per forward pass."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 (reference) or bfloat16 (faster on AMX CPUs)."),
    judge: str | None = typer.Option(None, "--judge", help="Also generate answers and judge them with this reward."),
    output_dir: str | None = OUTPUT,
    dry_run: bool = options.DRY_RUN,
):
    """TruthfulQA MC1/MC2 (MC0 on the current release) as lm-evaluation-harness computes them."""
    extra = list(more_models or [])
    overrides = [a for a in extra if "=" in a]
    data = {"name": "truthfulqa", "version": version}
    if limit is not None:
        data["limit"] = limit
    block = {"name": "truthfulqa", "models": list(models) + [a for a in extra if "=" not in a], "data": data,
             "batch_size": batch_size, "dtype": dtype}
    if judge is not None:
        block["judge"] = {"name": judge}
    run_evaluator(block, overrides, output_dir, dry_run)


@app.command("preference")
def preference(
    reward: str = typer.Option(..., "--reward", help="Reward plugin name (see `realm plugins`)."),
    data: list[str] = typer.Option(..., "--data",
                                   help="A named validation set: dataset name, file, or NAME=DATASET. Repeatable."),
    limit: int | None = LIMIT,
    output_dir: str | None = OUTPUT,
    dry_run: bool = options.DRY_RUN,
    overrides: list[str] = OVERRIDES,
):
    """Accuracy, margins, score distributions and calibration of sigmoid(margin), per named validation set."""
    sets = {}
    for item in data:
        label, _, value = item.rpartition("=") if "=" in item else ("", "", item)
        sets[label or Path(value).stem.split(".")[0] or value] = [
            dataset_block(value, default_plugin="preference", limit=limit)]
    block = {"name": "preference", "reward": {"name": reward}, "sets": sets}
    run_evaluator(block, overrides, output_dir, dry_run)
