import json

import typer
from rich.console import Console
from rich.table import Table


def plugins_command(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List every registered reward, dataset, trainer, evaluator and recipe, and plugins that failed to load."""
    from realm_cli import plugins

    state = plugins.state()
    entries = state.registry.entries()
    if as_json:
        print(json.dumps({"schema": "realm.plugins.v1", "plugins": [e.as_dict() for e in entries],
                          "failures": [f.__dict__ for f in state.failures]}, indent=2))
        return
    table = Table(title="realm plugins")
    for col in ("kind", "name", "plugin", "distribution", "description"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(e.kind, e.name, e.plugin, f"{e.distribution} {e.version}".strip(), e.description)
    console = Console()
    console.print(table)
    if state.failures:
        failed = Table(title="plugins that failed to load", title_style="red")
        for col in ("distribution", "plugin", "error"):
            failed.add_column(col, overflow="fold")
        for f in state.failures:
            failed.add_row(f.distribution, f.plugin, f.error)
        console.print(failed)
