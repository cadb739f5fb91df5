"""`realm eval`: one evaluator per subcommand, or several from an eval recipe (`realm eval --recipe R`).

Each subcommand builds the recipe its flags describe (shown by --dry-run, so it can be saved and re-run) and hands
it to the same runner as `realm eval --recipe`: every run leaves recipe.yaml and metrics.json behind.
Trailing ``key=value`` arguments are dotted overrides of the evaluator block, e.g. ``reward.model=runs/cpu-minilm``
(the ``bt`` reward's model). A ``--data`` file or hub id goes to the dataset plugin `realm data inspect` would guess
(``--dataset`` names one). ``--num-processes N`` runs the recipe under accelerate in N processes, which share out the
scoring (realm_cli.evaluate.shards); ``--json`` prints what metrics.json holds as one JSON object (EVAL_SCHEMA).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from typer.core import TyperGroup

from realm_cli.cli import options
from realm_cli.errors import RealmError


class EvalGroup(TyperGroup):
    """Lets `realm eval --recipe R key=value ...` take overrides although `eval` is a group of subcommands."""

    def parse_args(self, ctx, args):
        ctx.meta["realm_eval_argv"] = ["eval", *args]  # the header of a recipe built from flags
        if not any(a in self.commands for a in args):
            ctx.meta["realm_eval_overrides"] = [a for a in args if "=" in a and not a.startswith("-")]
            args = [a for a in args if a not in ctx.meta["realm_eval_overrides"]]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=EvalGroup,
                  help="Evaluate rewards and policies (RewardBench, RM-Bench, TruthfulQA, preference pairs).",
                  invoke_without_command=True)

EVAL_SCHEMA = "realm.eval.v1"  # --json: {"schema", "output_dir", "metrics": what metrics.json holds}
OVERRIDES = typer.Argument(None, help="Dotted overrides of the evaluator block, e.g. reward.model=runs/cpu-minilm "
                           "(the bt reward's model) reward.batch_size=16.", show_default=False)
OUTPUT = typer.Option(None, "--output-dir", "-o", help="Where results go (default runs/eval-<name>).")
LIMIT = typer.Option(None, "--limit", help="Use only the first N records of each dataset (quick runs).")
PROCESSES = typer.Option(1, "--num-processes", "-n", min=1,
                         help="Score in N processes (accelerate; one per GPU when there are enough, else CPU "
                              "processes); rank 0 merges and reports. Rerun after a crash to resume.")
JSON = typer.Option(False, "--json", help=f"Print the metrics as one JSON object on stdout: {{schema: "
                    f"{EVAL_SCHEMA}, output_dir, metrics}}, metrics being what metrics.json holds.")


@app.callback()
def eval_root(ctx: typer.Context,
              recipe: str | None = typer.Option(None, "--recipe", "-r", help="Run every evaluator of an eval recipe."),
              dry_run: bool = options.DRY_RUN, as_json: bool = JSON, launched: bool = options.LAUNCHED):
    """Evaluate rewards and policies. `realm eval --recipe R` runs an eval recipe (pipelines: `realm run`)."""
    if ctx.invoked_subcommand is not None:
        if recipe is not None:
            raise RealmError("give either --recipe or a subcommand, not both")
        return
    if recipe is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    from realm_cli.recipes import runner

    metrics = runner.run("eval", recipe, ctx.meta.get("realm_eval_overrides", []), dry_run=dry_run,
                         launched=launched)
    if as_json and not launched:
        print_json(runner.recipes.load(recipe, ctx.meta.get("realm_eval_overrides", [])), metrics)


def print_json(recipe, metrics: dict | None) -> None:
    """``--json``: the run's metrics (what metrics.json holds, keyed by evaluator) under a schema name."""
    import json

    from realm_cli.rewards.safe import json_safe

    if metrics is None:  # --dry-run
        return
    print(json.dumps({"schema": EVAL_SCHEMA, "output_dir": str(recipe.resolved_output_dir()),
                      "metrics": json_safe(metrics)}, default=str, allow_nan=False))


def dataset_block(value: str, *, dataset: str | None, limit: int | None) -> dict:
    """``--data`` value -> a dataset block: a registered dataset name, a file or folder, or a hub id."""
    from realm_cli.data import guess

    try:
        block = guess.block(value, plugin=dataset)
    except RealmError as exc:
        raise RealmError(f"--data {exc}") from None
    if limit is not None:
        block["limit"] = limit
    return block


def run_evaluator(ctx: typer.Context, block: dict, overrides: list[str] | None, output_dir: str | None,
                  dry_run: bool, *, num_processes: int = 1, as_json: bool = False) -> dict | None:
    """Build the one-evaluator recipe these flags describe and run it like any `realm eval --recipe`; with
    ``num_processes`` > 1 it runs launched (accelerate), every process scoring its share."""
    from realm_cli.config import merge, parse_overrides
    from realm_cli.recipes import recipe as recipes
    from realm_cli.recipes import runner

    name = f"eval-{block['name']}"
    block = merge(block, parse_overrides(list(overrides or [])))
    raw = {"command": "eval", "description": "built from the command line in its header",
           "output_dir": output_dir or f"runs/{name}", "evaluators": [block]}
    if num_processes > 1:
        from realm_cli.rewards.shards import accelerate_config

        raw["launch"] = {"accelerate_config": accelerate_config(num_processes), "num_processes": num_processes}
    argv = [a for a in ctx.meta.get("realm_eval_argv") or ["eval", block["name"]] if a not in ("--dry-run", "--json")]
    recipe = recipes.build(raw, source="command line", name=name, header="realm " + shlex.join(argv))
    metrics = runner.run_recipe(recipe, "eval", dry_run=dry_run)
    if as_json:
        print_json(recipe, metrics)
    return metrics


@app.command("reward-bench")
def reward_bench(
    ctx: typer.Context,
    reward: str = typer.Option(..., "--reward", help="Reward plugin name (see `realm plugins`)."),
    data: list[str] = typer.Option(["reward-bench"], "--data",
                                   help="reward-bench (hub allenai/reward-bench), llmbar (the offline Chat Hard "
                                        "subsets), allenai/reward-bench-2, another dataset name, a file or "
                                        "folder (either RewardBench schema is recognised), or a hub id. "
                                        "Repeatable."),
    protocol: str = typer.Option("auto", "--protocol", help="v1 (pairs), v2 (RewardBench 2 items), auto."),
    dataset: str | None = options.DATASET,
    limit: int | None = LIMIT,
    output_dir: str | None = OUTPUT,
    dry_run: bool = options.DRY_RUN,
    num_processes: int = PROCESSES,
    as_json: bool = JSON,
    overrides: list[str] = OVERRIDES,
):
    """Score RewardBench pairs with any reward: per-subset accuracy, weighted sections, overall (+ JSON, PNG)."""
    block = {"name": "reward-bench", "reward": {"name": reward}, "protocol": protocol,
             "data": [dataset_block(d, dataset=dataset, limit=limit) for d in data]}
    run_evaluator(ctx, block, overrides, output_dir, dry_run, num_processes=num_processes, as_json=as_json)


@app.command("truthfulqa")
def truthfulqa(
    ctx: typer.Context,
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
    as_json: bool = JSON,
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
    run_evaluator(ctx, block, overrides, output_dir, dry_run, as_json=as_json)


@app.command("preference")
def preference(
    ctx: typer.Context,
    reward: str = typer.Option(..., "--reward", help="Reward plugin name (see `realm plugins`)."),
    data: list[str] = typer.Option(..., "--data",
                                   help="A named validation set: dataset name, file, hub id, or LABEL=DATASET. "
                                        "Repeatable."),
    dataset: str | None = options.DATASET,
    limit: int | None = LIMIT,
    output_dir: str | None = OUTPUT,
    dry_run: bool = options.DRY_RUN,
    num_processes: int = PROCESSES,
    as_json: bool = JSON,
    overrides: list[str] = OVERRIDES,
):
    """Accuracy, margins, score distributions and calibration of sigmoid(margin), per named validation set."""
    sets = {}
    for item in data:
        label, _, value = item.rpartition("=") if "=" in item else ("", "", item)
        sets[label or Path(value).stem.split(".")[0] or value] = [
            dataset_block(value, dataset=dataset, limit=limit)]
    block = {"name": "preference", "reward": {"name": reward}, "sets": sets}
    run_evaluator(ctx, block, overrides, output_dir, dry_run, num_processes=num_processes, as_json=as_json)


@app.command("rm-bench")
def rm_bench(
    ctx: typer.Context,
    reward: str = typer.Option(..., "--reward", help="Reward plugin name (see `realm plugins`)."),
    data: list[str] = typer.Option(["rm-bench"], "--data",
                                   help="rm-bench (hub THU-KEG/RM-Bench), or an RM-Bench file (JSON or JSONL rows "
                                        "id, prompt, chosen[3], rejected[3], domain). Repeatable."),
    dataset: str | None = options.DATASET,
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N items of each dataset (3N style "
                                                           "pairs)."),
    output_dir: str | None = OUTPUT,
    dry_run: bool = options.DRY_RUN,
    num_processes: int = PROCESSES,
    as_json: bool = JSON,
    overrides: list[str] = OVERRIDES,
):
    """RM-Bench with any reward: hard/normal/easy style accuracy per domain and overall, with 95% intervals."""
    styles = 3  # the rm-bench dataset gives one record per style of an item
    blocks = [dataset_block(d, dataset=dataset, limit=None if limit is None else limit * styles) for d in data]
    block = {"name": "rm-bench", "reward": {"name": reward}, "data": blocks}
    run_evaluator(ctx, block, overrides, output_dir, dry_run, num_processes=num_processes, as_json=as_json)
