"""``realm data``: inspect and convert any supported preference source (heavy imports happen inside commands)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from realm_cli.errors import RealmError

app = typer.Typer(help="Inspect and convert preference data.", no_args_is_help=True)

TARGET = typer.Argument(..., help="A dataset name (see `realm plugins`) or a data file/folder (the plugin is guessed).")
OPTIONS = typer.Argument(None, help="Dataset options as key=value, e.g. subset=harmless-base prompt_key=question.",
                         show_default=False)
ON_BAD = typer.Option(None, "--on-bad-record", help="fail | skip (default: the dataset's own; fail for user files).")


def _with_progress(records, what: str):
    """Records as they stream, with a live count on stderr (large files and hub streams take a while)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}: {task.completed:,} records"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(what, total=None)
        for record in records:
            progress.advance(task)
            yield record


def _policy(value: str | None) -> str | None:
    if value not in (None, "fail", "skip"):
        raise RealmError(f"--on-bad-record: expected fail or skip, got {value!r}")
    return value


def inspect(target: str = TARGET, options: list[str] = OPTIONS,
            tokenizer: str | None = typer.Option(None, "--tokenizer", help="Model alias/path: lengths in its tokens, "
                                            "formatted as train-rm and the bt reward format them."),
            max_length: int | None = typer.Option(None, "--max-length", help="Count records truncated/dropped at "
                                                  "this many tokens (needs --tokenizer)."),
            overlong: str = typer.Option("truncate", "--overlong", help="truncate | drop, with --max-length."),
            examples: int = typer.Option(3, "--examples", help="How many example records to show."),
            on_bad_record: str | None = ON_BAD,
            as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Counts, kept/skipped by reason, length percentiles, duplicate pairs and example records of a dataset."""
    from realm_cli.data.length import PairFitter
    from realm_cli.data.load import LoadReport, iter_source
    from realm_cli.data.guess import spec_from_args
    from realm_cli.data.inspect import summary, summary_tables

    if max_length is not None and tokenizer is None:
        raise RealmError("--max-length needs --tokenizer (lengths are counted in that tokenizer's tokens)")
    if max_length is not None and max_length <= 0:
        raise RealmError(f"--max-length: expected a positive number of tokens, got {max_length}")
    if overlong not in ("truncate", "drop"):
        raise RealmError(f"--overlong: expected truncate or drop, got {overlong!r}")
    spec = spec_from_args(target, options)
    report = LoadReport(spec.name)
    records = list(_with_progress(iter_source(spec, report, on_bad_record=_policy(on_bad_record)),
                                  f"reading {spec.name}"))
    fmt = fit = None
    if tokenizer is not None:
        from realm_cli import models
        from realm_cli.rewards import rm as rmlib

        # Loaded, formatted and fitted exactly as `realm train-rm` and the bt reward do: one counter, one cut order.
        tok = rmlib.load_tokenizer(models.local_path(tokenizer), tokenizer)
        fmt = rmlib.RMFormat(tok, max_length or rmlib.DEFAULT_MAX_LENGTH)
        if max_length is not None:
            fit = PairFitter(fmt, overlong)
    info = summary(records, report, fmt=fmt, fit=fit, examples=examples)
    if as_json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return
    Console().print(summary_tables(info, report))


def convert(source: str = TARGET, options: list[str] = OPTIONS,
            output: Path = typer.Option(..., "--output", "-o", help="Where to write canonical JSONL."),
            on_bad_record: str | None = ON_BAD,
            as_json: bool = typer.Option(False, "--json", help="Print the load report as JSON.")):
    """Write any supported source as canonical JSONL (one record per line: prompt messages, chosen, rejected...)."""
    from realm_cli.data.load import LoadReport, iter_source
    from realm_cli.data.guess import spec_from_args
    from realm_cli.data.report import skipped_table, sources_table

    spec = spec_from_args(source, options)
    report = LoadReport(spec.name)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as fh:
            for record in _with_progress(iter_source(spec, report, on_bad_record=_policy(on_bad_record)),
                                         f"converting {spec.name}"):
                fh.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    except BaseException:
        partial.unlink(missing_ok=True)  # never leave a half-written file under the requested name
        raise
    partial.replace(output)
    if as_json:
        print(json.dumps({"output": str(output), **report.to_json()}, indent=2, ensure_ascii=False))
        return
    console = Console()
    console.print(sources_table([("", report)], title=f"{spec.name} -> {output}"))
    skipped = skipped_table([("", report)])
    if skipped is not None:
        console.print(skipped)
    console.print(f"wrote {report.kept} records to {output}", highlight=False)


app.command("inspect")(inspect)
app.command("convert")(convert)
