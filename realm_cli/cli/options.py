"""Options shared by every command that runs a recipe."""

import typer

RECIPE = typer.Option(..., "--recipe", "-r", help="Recipe name (see `realm recipes list`) or path to a YAML file.")
OVERRIDES = typer.Argument(None, help="Dotted overrides, e.g. trainer.learning_rate=1e-5 data.max_length=512.",
                           show_default=False)
DRY_RUN = typer.Option(False, "--dry-run", help="Print the launch command (or the resolved recipe, or a pipeline's "
                       "steps) and stop.")
RESUME = typer.Option(False, "--resume", help="Continue from the last checkpoint in the output directory.")
LAUNCHED = typer.Option(False, "--launched", hidden=True, help="Set by realm when re-entering under accelerate.")
JSON = typer.Option(False, "--json", help="Print JSON instead of a table: one object with a 'schema' name and version.")
DATASET = typer.Option(None, "--dataset", help="The dataset plugin that reads the --data files and hub ids "
                       "(default: guessed from each, as `realm data inspect` does; see `realm plugins`).")
