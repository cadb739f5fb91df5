import json

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from realm_cli.cli import options

app = typer.Typer(help="List, show and validate recipes.", no_args_is_help=True)


@app.command("list")
def list_recipes(as_json: bool = options.JSON):
    """List the registered recipes."""
    from realm_cli import plugins
    from realm_cli.recipes import recipe as recipes

    if as_json:
        rows = []
        for entry in plugins.registry().entries("recipe"):
            row = {"name": entry.name, "plugin": entry.plugin, "command": None, "launch": None, "description": "", "header": None,
                   "error": None}
            try:
                raw, header = recipes.read(recipes.find(entry.name))
                row.update(command=raw.get("command"), launch=raw.get("launch") or {"accelerate_config": "cpu"},
                           description=str(raw.get("description", "")), header=header)
            except Exception as exc:  # listing must survive one broken recipe
                row["error"] = str(exc)
            rows.append(row)
        print(json.dumps({"schema": "realm.recipes.v1", "recipes": rows}, indent=2))
        return

    table = Table(title="recipes")
    for col in ("name", "command", "launch", "description", "plugin"):
        table.add_column(col, overflow="fold")
    for entry in plugins.registry().entries("recipe"):
        try:
            raw, _ = recipes.read(recipes.find(entry.name))
        except Exception as exc:  # listing must survive one broken recipe
            table.add_row(entry.name, "?", "?", f"[red]{exc}[/red]", entry.plugin)
            continue
        launch = raw.get("launch") or {}
        where = launch.get("accelerate_config", "cpu") + (f" + {launch['deepspeed_config']}"
                                                          if launch.get("deepspeed_config") else "")
        table.add_row(entry.name, str(raw.get("command", "?")), where, str(raw.get("description", "")), entry.plugin)
    Console().print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Recipe name or path."), as_json: bool = options.JSON):
    """Print a recipe file."""
    from realm_cli.recipes import recipe as recipes

    path = recipes.find(name)
    raw, _ = recipes.read(path)  # a YAML mapping, or a one-line error: `show` prints recipes, not any file
    if "command" not in raw:
        from realm_cli.errors import RealmError

        raise RealmError(f"{path}: not a recipe (no 'command' key); `realm recipes show` prints recipe files only")
    if as_json:
        print(json.dumps({"schema": "realm.recipe.v1", "name": recipes.file_name(path), "path": str(path),
                          "recipe": raw}, indent=2, default=str))
        return
    Console().print(f"[dim]{path}[/dim]")
    Console().print(Syntax(path.read_text(), "yaml", theme="ansi_dark", background_color="default"))


@app.command("validate")
def validate(name: str = typer.Argument(..., help="Recipe name or path."), overrides: list[str] = options.OVERRIDES):
    """Validate a recipe (with optional overrides) without running it."""
    from realm_cli.recipes import launch, pipeline
    from realm_cli.recipes import recipe as recipes

    recipe = recipes.load(name, list(overrides or []))
    if recipe.command == "pipeline":
        how = f"{len(pipeline.plan(recipe))} steps, each recipe valid"
    elif launch.needs_launcher(recipe.launch):
        how = f"accelerate launch ({launch.process_count(recipe.launch)} processes)"
    else:
        how = "in-process"
    Console().print(f"[green]ok[/green] {recipe.name}: `{recipe.header}` — {recipe.command}, runs {how}, "
                    f"output {recipe.resolved_output_dir()}", highlight=False)
