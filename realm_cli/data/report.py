"""Rich tables for data load reports (the JSON form is ``DataReport.to_json()`` / ``LoadReport.to_json()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

if TYPE_CHECKING:
    from realm_cli.data.load import DataReport, LoadReport


def sources_table(reports: list[tuple[str, LoadReport]], title: str = "data sources") -> Table:
    table = Table(title=title)
    with_split = any(split for split, _ in reports)
    for col in ("split",) * with_split + ("dataset", "origin", "policy", "read", "kept", "skipped"):
        table.add_column(col, overflow="fold", justify="right" if col in ("read", "kept", "skipped") else "left")
    for split, r in reports:
        row = (r.name, r.origin, r.policy, str(r.read), str(r.kept), str(sum(r.skipped.values())))
        table.add_row(*((split,) * with_split + row))
    return table


def skipped_table(reports: list[tuple[str, LoadReport]]) -> Table | None:
    rows = [(split, r.name, reason, n, r.first_error.get(reason, ""))
            for split, r in reports for reason, n in sorted(r.skipped.items())]
    if not rows:
        return None
    table = Table(title="skipped records (by reason)", title_style="yellow")
    with_split = any(row[0] for row in rows)
    for col in ("split",) * with_split + ("dataset", "reason", "count", "first occurrence"):
        table.add_column(col, overflow="fold", justify="right" if col == "count" else "left")
    for split, name, reason, n, first in rows:
        table.add_row(*((split,) * with_split + (name, reason, str(n), first)))
    return table


def data_report_tables(report: DataReport) -> Group:
    flat = [(split, r) for split, rs in report.sources.items() for r in rs]
    parts = [sources_table(flat)]
    skipped = skipped_table(flat)
    if skipped is not None:
        parts.append(skipped)
    if report.mixture:
        mix = Table(title=f"train mixture (seed {report.seed})")
        for col in ("dataset", "available", "taken"):
            mix.add_column(col, justify="left" if col == "dataset" else "right")
        for row in report.mixture:
            mix.add_row(row["source"], str(row["available"]), str(row["taken"]))
        parts.append(mix)
    fitted = (f"max_length {report.max_length}, overlong: {report.overlong}" if report.length_fitted
              else "no length fitting applied")
    splits = Table(title=f"splits ({fitted})")
    for col in ("split", "records", "truncated", "dropped", "kept"):
        splits.add_column(col, justify="left" if col == "split" else "right")
    for name, s in report.splits.items():
        splits.add_row(name, str(s.records), str(s.truncated), str(s.dropped), str(s.kept))
    parts.append(splits)
    return Group(*parts)
