"""The realm command line. Thin: parse, resolve a recipe, look up plugins, call them. No heavy imports here."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from realm_cli import __version__
from realm_cli import plugins
from realm_cli.cli import align
from realm_cli.cli import chat
from realm_cli.cli import data
from realm_cli.cli import evaluate
from realm_cli.cli import models
from realm_cli.cli import plugin_list
from realm_cli.cli import recipes
from realm_cli.cli import report
from realm_cli.cli import run
from realm_cli.cli import score
from realm_cli.cli import serve
from realm_cli.cli import share
from realm_cli.cli import train_rm
from realm_cli.errors import RealmError

err = Console(stderr=True)


class RealmGroup(TyperGroup):
    """Every user mistake (RealmError) becomes one red line and exit status 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RealmError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            ctx.exit(2)


def _version(value: bool):
    if value:
        print(f"realm {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(cls=RealmGroup, name="realm", no_args_is_help=True, add_completion=True, rich_markup_mode="rich",
                      help="realm: train reward models, score with swappable rewards, align policies, evaluate.",
                      context_settings={"help_option_names": ["-h", "--help"]})

    @app.callback()
    def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit.")):
        for failure in plugins.state().failures:
            err.print("[yellow]warning:[/yellow] "
                      + escape(f"plugin {failure.plugin} ({failure.distribution}) failed to load: {failure.error}"),
                      highlight=False, soft_wrap=True)

    train = "Train"
    app.command("train-rm", rich_help_panel=train)(train_rm.train_rm)
    app.command("align", rich_help_panel=train)(align.align)
    app.command("run", rich_help_panel=train)(run.run)
    app.command("score", rich_help_panel="Score")(score.score)
    app.command("serve", rich_help_panel="Score")(serve.serve)
    app.command("chat", rich_help_panel="Score")(chat.chat)
    app.add_typer(evaluate.app, name="eval", rich_help_panel="Evaluate")
    app.command("report", rich_help_panel="Evaluate")(report.report)
    app.command("verify", rich_help_panel="Evaluate")(report.verify)
    app.command("export", rich_help_panel="Share")(share.export)
    app.command("push", rich_help_panel="Share")(share.push)
    app.add_typer(data.app, name="data", rich_help_panel="Inspect")
    app.command("plugins", rich_help_panel="Inspect")(plugin_list.plugins_command)
    app.add_typer(recipes.app, name="recipes", rich_help_panel="Inspect")
    app.add_typer(models.app, name="models", rich_help_panel="Inspect")
    state = plugins.state()
    for impl in reversed(state.manager.hook.register_commands.get_hookimpls()):
        try:
            impl.function(app)
        except Exception as exc:  # a plugin's broken command must not take the CLI down
            state.failures.append(plugins.Failure(state.origins.get(impl.plugin_name, ("?", ""))[0],
                                                  impl.plugin_name, f"{type(exc).__name__}: {exc}"))
    return app


def main() -> None:
    try:
        build_app()(prog_name="realm")
    except RealmError as exc:  # raised while building the app (e.g. duplicate plugin names)
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)

