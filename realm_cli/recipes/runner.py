"""Run a recipe: validate, launch (in-process or through accelerate), call the plugin, save config and metrics.

A command hands over either a recipe reference (``run``) or a recipe it built in memory from its flags
(``run_recipe``). A run that needs ``accelerate launch`` writes its resolved recipe to ``OUTPUT_DIR/recipe.yaml``
first and re-enters realm on that file, so the launched processes run exactly what was validated here.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from rich.console import Console

from realm_cli import distributed, models, plugins
from realm_cli.errors import RealmError
from realm_cli.recipes import launch
from realm_cli.recipes import recipe as recipes

console = Console(stderr=True)


def run(command: str, ref: str, overrides: list[str], *, dry_run: bool = False, resume: bool = False,
        launched: bool = False) -> dict | None:
    """Load recipe ``ref`` (with dotted ``overrides``) and run it as ``command`` ("train-rm", "align", "eval",
    "pipeline")."""
    return run_recipe(recipes.load(ref, overrides), command, dry_run=dry_run, resume=resume, launched=launched)


def run_recipe(recipe: recipes.Recipe, command: str | None = None, *, dry_run: bool = False, resume: bool = False,
               launched: bool = False) -> dict | None:
    command = command or recipe.command
    if recipe.command != command:
        raise RealmError(f"recipe {recipe.name!r} is a {recipe.command} recipe: run it with "
                         f"`realm {recipes.VERBS[recipe.command]} --recipe {recipe.name}`")
    if command == "pipeline":
        from realm_cli.recipes import pipeline

        return pipeline.run(recipe, dry_run=dry_run)
    output_dir = recipe.resolved_output_dir()
    if not launched and launch.needs_launcher(recipe.launch):
        resolved = output_dir / "recipe.yaml"
        argv = launch.build_command([recipes.VERBS[command]], str(resolved), ["--resume"] if resume else [],
                                    recipe.launch)
        _check_multi_process(recipe)
        if dry_run:
            console.print(f"[dim]# the resolved recipe goes to {resolved} first[/dim]", highlight=False)
            print(shlex.join(argv))
            return None
        launch.check_hardware(recipe.launch)
        before = _before_run(output_dir)
        recipes.save_resolved(recipe, output_dir)
        code = subprocess.call(argv)
        if code != 0:
            _undo_empty_run(output_dir, before)
            raise RealmError(f"the launched run exited with status {code}")
        return _read_metrics(output_dir)
    if dry_run:
        print(recipes.resolved_text(recipe), end="")
        print(f"# runs in-process ({recipe.launch.accelerate_config})")
        return None
    launch.check_hardware(recipe.launch)
    before = _before_run(output_dir)
    if distributed.is_main_process():
        recipes.save_resolved(recipe, output_dir)
    models.quiet_library_progress()
    metrics = {}
    try:
        for kind, spec in recipes.jobs(recipe):
            job_cls = plugins.lookup(kind, spec.name)
            result = job_cls(recipe, spec.options).run(output_dir, resume=resume)
            metrics.update(result if kind == "trainer" else {spec.name: result})
    except RealmError:
        _undo_empty_run(output_dir, before)
        raise
    if distributed.is_main_process():
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    distributed.finish()
    return metrics


def _check_multi_process(recipe: recipes.Recipe) -> None:
    """Before launching N processes: a job that runs in one process only (``multi_process = False``, e.g. PPO's own
    loop) fails once here, not once per launched rank."""
    count = launch.process_count(recipe.launch)
    for kind, spec in recipes.jobs(recipe):
        if count > 1 and not getattr(plugins.lookup(kind, spec.name), "multi_process", True):
            raise RealmError(f"{recipe.command} with {kind} {spec.name!r} runs in one process only; this recipe "
                             f"launches {count} (set launch.num_processes=1)")


def _before_run(output_dir: Path) -> tuple[list[Path], set[str]]:
    """The folders of ``output_dir`` this run is about to create (deepest first), and what ``output_dir`` holds now."""
    missing, path = [], output_dir
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing, {p.name for p in output_dir.iterdir()} if output_dir.is_dir() else set()


def _undo_empty_run(output_dir: Path, before: tuple[list[Path], set[str]]) -> None:
    """A run refused before it produced anything (a GPU recipe on a CPU, a missing model) leaves nothing behind:
    the recipe.yaml it wrote and the folders it created go, when nothing else was written into them."""
    created, held = before
    if not distributed.is_main_process() or not output_dir.is_dir():
        return
    new = {p.name for p in output_dir.iterdir()} - held
    if new == {"recipe.yaml"}:
        (output_dir / "recipe.yaml").unlink()
    for folder in created:
        try:
            folder.rmdir()  # only empty folders go
        except OSError:
            return


def _read_metrics(output_dir: Path) -> dict:
    path = output_dir / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}
