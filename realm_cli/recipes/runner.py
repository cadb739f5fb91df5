"""Run a recipe: validate, launch (in-process or through accelerate), call the plugin, save config and metrics."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from rich.console import Console

from realm_cli import distributed
from realm_cli.recipes import launch
from realm_cli import plugins
from realm_cli.recipes import recipe as recipes
from realm_cli.errors import RealmError

console = Console(stderr=True)


def run(command: str, ref: str, overrides: list[str], *, dry_run: bool = False, resume: bool = False,
        launched: bool = False) -> dict | None:
    recipe = recipes.load(ref, overrides)
    if recipe.command != command:
        raise RealmError(f"recipe {recipe.name!r} is a {recipe.command} recipe: run it with "
                         f"`realm {recipe.command} --recipe {recipe.name}`")
    if not launched and launch.needs_launcher(recipe.launch):
        argv = launch.build_command(command.split(), ref, overrides + (["--resume"] if resume else []),
                                    recipe.launch)
        if dry_run:
            print(shlex.join(argv))
            return None
        launch.check_hardware(recipe.launch)
        code = subprocess.call(argv)
        if code != 0:
            raise RealmError(f"the launched run exited with status {code}")
        return _read_metrics(recipe.resolved_output_dir())
    if dry_run:
        print(f"# runs in-process ({recipe.launch.accelerate_config}); resolved recipe:")
        import yaml

        from realm_cli.config import to_dict

        print(yaml.safe_dump(to_dict(recipe), sort_keys=False), end="")
        return None
    launch.check_hardware(recipe.launch)
    output_dir = recipe.resolved_output_dir()
    if distributed.is_main_process():
        recipes.save_resolved(recipe, output_dir)
    quiet_library_progress()
    metrics = {}
    for kind, spec in _jobs(recipe):
        job_cls = plugins.lookup(kind, spec.name)
        if command not in job_cls.commands:
            raise RealmError(f"{kind} {spec.name!r} cannot run under `realm {command}` "
                             f"(it serves: {', '.join(job_cls.commands)})")
        result = job_cls(recipe, spec.options).run(output_dir, resume=resume)
        metrics.update(result if kind == "trainer" else {spec.name: result})
    if distributed.is_main_process():
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    return metrics


def quiet_library_progress() -> None:
    """realm draws its own rich progress; the libraries' tqdm bars (weight loading, dataset maps) only interleave.
    TRL and peft still read transformers' renamed ``is_gradient_checkpointing``: a warning no realm user can act on."""
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def _jobs(recipe: recipes.Recipe):
    if recipe.command in ("train-rm", "align"):
        if recipe.trainer is None:
            raise RealmError(f"recipe {recipe.name!r}: trainer: required for `realm {recipe.command}`")
        return [("trainer", recipe.trainer)]
    if recipe.command == "eval":
        if not recipe.evaluators:
            raise RealmError(f"recipe {recipe.name!r}: evaluators: at least one required for `realm eval`")
        return [("evaluator", spec) for spec in recipe.evaluators]
    raise RealmError(f"recipe {recipe.name!r} is a {recipe.command} recipe")


def _read_metrics(output_dir: Path) -> dict:
    path = output_dir / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}
