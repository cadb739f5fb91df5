"""`realm report`: the metrics.json of several runs (train-rm, align, eval) side by side, as a table, JSON and PNG.

Metrics are nested dicts of different shapes per command; they are flattened to dotted key paths
(``reward-bench.sections.Chat Hard``) so that any two runs line up on the keys they share.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from realm_cli.config import load_yaml
from realm_cli.errors import RealmError


def flatten(obj, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts, keyed by dotted path; lists, strings and booleans are left out."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix] = float(obj)
    return out


def read_run(run_dir: Path) -> dict:
    """A run's label, command and flattened metrics; a missing or unreadable metrics.json is an error."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise RealmError(f"{run_dir}: no metrics.json (is it a realm run directory?)")
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as exc:
        raise RealmError(f"{metrics_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    command = ""
    recipe_path = run_dir / "recipe.yaml"
    if recipe_path.is_file():
        try:
            command = str((load_yaml(recipe_path.read_text()) or {}).get("command", ""))
        except (yaml.YAMLError, AttributeError, UnicodeDecodeError):
            command = "?"
    return {"run": str(run_dir), "label": run_dir.name, "command": command, "metrics": flatten(metrics)}


def gather(run_dirs: list[Path]) -> dict:
    runs = [read_run(Path(d)) for d in run_dirs]
    labels = [r["label"] for r in runs]
    if len(set(labels)) < len(labels):  # same folder name under different parents: use the full paths
        for r in runs:
            r["label"] = r["run"]
    keys = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    return {"runs": runs, "keys": keys,
            "shared": [k for k in keys if sum(k in r["metrics"] for r in runs) >= 2]}


def write(run_dirs: list[Path], output_dir: Path) -> dict:
    """Gather the runs and write ``report.json`` (and ``report.png`` when there is something to plot)."""
    result = gather(run_dirs)
    output_dir.mkdir(parents=True, exist_ok=True)
    result["plot"] = plot(result, output_dir / "report.png")
    (output_dir / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}"


def table(report: dict, only_shared: bool = False):
    from rich.table import Table

    out = Table(title="realm report")
    out.add_column("metric", overflow="fold")
    for r in report["runs"]:
        out.add_column(f"{r['label']}\n[dim]{r['command']}[/dim]", justify="right")
    for key in report["shared"] if only_shared else report["keys"]:
        out.add_row(key, *[fmt(r["metrics"].get(key)) for r in report["runs"]])
    return out


def plot(report: dict, path: Path, max_metrics: int = 16) -> bool:
    """Grouped bars of the metrics shared by at least two runs (or all metrics for one run); False if none."""
    keys = report["shared"] or (report["keys"] if len(report["runs"]) == 1 else [])
    keys = keys[:max_metrics]
    if not keys:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(keys) + 2), 4.5))
    for i, r in enumerate(runs):
        values = [r["metrics"].get(k, float("nan")) for k in keys]
        ax.bar([j + i * width for j in range(len(keys))], values, width=width, label=r["label"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    ax.set_xticklabels(keys, rotation=40, ha="right", fontsize=8)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.legend(fontsize=8)
    ax.set_title("realm report")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
