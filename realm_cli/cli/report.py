"""`realm report RUN_DIR...` and `realm verify RUN_DIR...`."""

from __future__ import annotations

from pathlib import Path

import typer

from realm_cli.errors import RealmError


def report(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories (each with metrics.json)."),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", show_default=False,
                                    help="Where report.json and report.png go [default: report/ beside the run "
                                         "directories, under their common parent]."),
    shared_only: bool = typer.Option(False, "--shared-only", help="Show only metrics present in two runs or more."),
):
    """Compare the metrics of several runs (train-rm, align, eval) in one table, JSON and PNG; eval runs are also
    tested against the first run on their shared items (McNemar for pair accuracy, paired bootstrap for means)."""
    from rich.console import Console

    from realm_cli.evaluate import report as run_report

    if output_dir is None:
        output_dir = run_report.default_output_dir(run_dirs)
    result = run_report.write([Path(d) for d in run_dirs], output_dir)
    console = Console()
    if shared_only and not result["shared"]:
        console.print(f"no metric is shared by two or more of the {len(result['runs'])} runs: nothing to show with "
                      f"--shared-only", highlight=False, soft_wrap=True)
    else:
        console.print(run_report.table(result, only_shared=shared_only))
    for paired in run_report.paired_tables(result):
        console.print(paired)
    for note in result["paired_notes"]:
        console.print(note, highlight=False, soft_wrap=True)
    console.print(f"[dim]wrote {output_dir / 'report.json'}"
                  + (f" and {output_dir / 'report.png'}" if result["plot"] else "") + "[/dim]", highlight=False)


def verify(run_dirs: list[Path] = typer.Argument(..., help="Run directories to check.")):
    """Check that a run's artifacts exist and load (metrics, recipe, outputs, model + tokenizer)."""
    from rich.console import Console
    from rich.table import Table

    from realm_cli.evaluate import verify as run_verify

    checks = [check for d in run_dirs for check in run_verify.verify(Path(d))]
    table = Table(title="realm verify")
    for col in ("artifact", "status", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.artifact, "[green]ok[/green]" if c.ok else "[red]FAIL[/red]", c.detail)
    Console().print(table)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise RealmError(f"verify: {len(failed)} of {len(checks)} checks failed (first: {failed[0].artifact}: "
                         f"{failed[0].detail})")
