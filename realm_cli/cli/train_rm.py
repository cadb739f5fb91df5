import typer

from realm_cli.cli import options

OUTPUT_DIR = typer.Option(None, "--output-dir", "-o", help="Where the run writes (the model, metrics.json, "
                          "checkpoints/); sets the recipe's output_dir.")


def train_rm(
    recipe: str = options.RECIPE,
    overrides: list[str] = options.OVERRIDES,
    output_dir: str = OUTPUT_DIR,
    dry_run: bool = options.DRY_RUN,
    resume: bool = options.RESUME,
    merge: bool = typer.Option(False, "--merge", help="Also write a plain merged model (LoRA folded in)."),
    launched: bool = options.LAUNCHED,
):
    """Train a reward model (Bradley-Terry) from a recipe."""
    from realm_cli.recipes import runner

    extra = (["trainer.merge=true"] if merge else []) + ([f"output_dir={output_dir}"] if output_dir else [])
    runner.run("train-rm", recipe, list(overrides or []) + extra, dry_run=dry_run, resume=resume, launched=launched)
