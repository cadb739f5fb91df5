"""Pipeline recipes (``realm run --recipe R``): steps that run other recipes in order, then verify and report.

A ``train-rm``/``align``/``eval`` step runs its recipe (with its overrides) through the same runner as the
command of that name. A ``verify`` step checks every model-producing run so far (or the one its ``recipe`` names);
a ``report`` step compares the metrics of every run so far, writing into the pipeline's own output directory.
Every step's recipe is validated before the first step starts, so a typo fails in seconds, not after training.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from realm_cli.errors import RealmError
from realm_cli.recipes import recipe as recipes

console = Console(stderr=True)
RUNS = ("train-rm", "align", "eval")


def plan(recipe: recipes.PipelineRecipe) -> list[tuple[str, str | None, list[str], Path | None]]:
    """(kind, recipe ref, overrides, output dir) per step, every referenced recipe loaded and validated."""
    out = []
    for i, step in enumerate(recipe.steps):
        where = f"{recipe.source}: steps[{i}]"
        if step.run in RUNS:
            if step.recipe is None:
                raise RealmError(f"{where}.recipe: required for a {step.run} step")
            loaded = recipes.load(step.recipe, step.overrides)
            if loaded.command != step.run:
                raise RealmError(f"{where}: recipe {step.recipe!r} is a {loaded.command} recipe, not {step.run}")
            out.append((step.run, step.recipe, step.overrides, loaded.resolved_output_dir()))
        else:
            target = recipes.load(step.recipe, step.overrides).resolved_output_dir() if step.recipe else None
            out.append((step.run, step.recipe, step.overrides, target))
    return out


def run(recipe: recipes.PipelineRecipe, *, dry_run: bool = False) -> dict:
    from realm_cli.evaluate import report as run_report
    from realm_cli.evaluate import verify as run_verify
    from realm_cli.recipes import runner

    steps = plan(recipe)
    if dry_run:
        for kind, ref, overrides, target in steps:
            if kind in RUNS:
                print(f"realm {kind} --recipe {ref} {' '.join(overrides)}".rstrip() + f"   # -> {target}")
            else:
                print(f"realm {kind} {target or '<every run above>'}")
        return {}
    produced: list[tuple[str, Path]] = []
    summary: dict = {}
    for i, (kind, ref, overrides, target) in enumerate(steps, 1):
        console.rule(f"pipeline {recipe.name}: step {i}/{len(steps)}: {kind} {ref or ''}".rstrip())
        if kind in RUNS:
            runner.run(kind, ref, overrides)
            produced.append((kind, target))
        elif kind == "verify":
            dirs = [target] if target else [d for k, d in produced if k in ("train-rm", "align")]
            checks = [check for d in dirs for check in run_verify.verify(d)]
            failed = [c for c in checks if not c.ok]
            summary["verify"] = {"checks": len(checks), "failed": [f"{c.artifact}: {c.detail}" for c in failed]}
            if failed:
                raise RealmError(f"pipeline {recipe.name}: verify failed: {failed[0].artifact}: {failed[0].detail}")
            console.print(f"[green]verified[/green] {len(checks)} artifacts in {len(dirs)} runs", highlight=False)
        elif kind == "report":
            out_dir = recipe.resolved_output_dir()
            result = run_report.write([d for _, d in produced], out_dir)
            Console().print(run_report.table(result))
            summary["report"] = str(out_dir / "report.json")
    return summary
