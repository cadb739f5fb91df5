import json

import typer
from rich.console import Console
from rich.table import Table

from realm_cli.cli import options

app = typer.Typer(help="Model aliases and where they resolve.", no_args_is_help=True)


@app.command("list")
def list_models(as_json: bool = options.JSON):
    """Show model aliases and where each resolves (packaged path, cache, or hub id)."""
    from realm_cli import models

    if as_json:
        rows = [{"alias": a.name, "source": r.source, "location": r.location, "hub_id": a.hub_id,
                 "description": a.description} for a, r in ((a, models.resolve(a.name)) for a in models.ALIASES.values())]
        print(json.dumps({"schema": "realm.models.v1", "cache": str(models.cache_dir()), "models": rows}, indent=2))
        return

    table = Table(title="model aliases")
    for col in ("alias", "resolves to", "location", "hub id", "description"):
        table.add_column(col, overflow="fold")
    for alias in models.ALIASES.values():
        r = models.resolve(alias.name)
        table.add_row(alias.name, r.source, r.location, alias.hub_id, alias.description)
    Console().print(table)
    Console().print(f"[dim]cache: {models.cache_dir()} — any local path or hub id works too[/dim]")
