"""`realm run --recipe R`: a pipeline recipe's steps (train-rm, align, eval, verify, report), in order."""

from realm_cli.cli import options


def run(
    recipe: str = options.RECIPE,
    overrides: list[str] = options.OVERRIDES,
    dry_run: bool = options.DRY_RUN,
):
    """Run a pipeline recipe: every step's recipe is validated first, then the steps run in order."""
    from realm_cli.recipes import runner

    runner.run("pipeline", recipe, list(overrides or []), dry_run=dry_run)
