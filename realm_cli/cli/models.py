import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Model aliases and where they resolve.", no_args_is_help=True)


@app.command("list")
def list_models():
    """Show model aliases and where each resolves (packaged path, cache, or hub id)."""
    from realm_cli import models

    table = Table(title="model aliases")
    for col in ("alias", "resolves to", "location", "hub id", "description"):
        table.add_column(col, overflow="fold")
    for alias in models.ALIASES.values():
        r = models.resolve(alias.name)
        table.add_row(alias.name, r.source, r.location, alias.hub_id, alias.description)
    Console().print(table)
    Console().print(f"[dim]cache: {models.cache_dir()} — any local path or hub id works too[/dim]")
