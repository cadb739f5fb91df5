"""`realm report`: the metrics.json of several runs (train-rm, align, eval) side by side, as a table, JSON and PNG,
and a paired significance test of each run against the first on the items they share.

Metrics are nested dicts of different shapes per command; they are flattened to dotted key paths
(``reward-bench.sections.Chat Hard``) so that any two runs line up on the keys they share. A value with a 95%
interval beside it (``ci95``) is shown with it.

Paired tests read the per-item results an eval run leaves (``preference.json`` per pair, ``reward_bench.json`` per
pair or item, ``rm_bench.json`` per item) and match items by (set or subset or domain, id); an id that repeats
within a group is ambiguous and left out (counted). Pairwise correctness (preference pairs, RewardBench v1): McNemar's
test (``stats.mcnemar``: exact binomial under 25 discordant pairs, else chi-square with continuity correction).
Item scores (RewardBench 2 best-of-n, RM-Bench's 9-comparison mean): a paired bootstrap of the difference of means
(``stats.paired_bootstrap``). Significant: p < 0.05, per group and over all shared items of a benchmark.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import yaml

from realm_cli.config import load_yaml
from realm_cli.errors import RealmError


CI_SETTINGS = ("ci_resamples", "ci_seed")  # how an interval was drawn: said in the table's caption, not a metric
CI_OWNERS = ("accuracy", "win_rate", "score", "diff")  # the value a sibling ``ci95: [low, high]`` belongs to


def flatten(obj, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts, keyed by dotted path; lists, strings, booleans and the bootstrap settings are
    left out."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in CI_SETTINGS:
                continue
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix] = float(obj)
    return out


def _join(prefix: str, key) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def intervals(obj, prefix: str = "") -> dict[str, list[float]]:
    """Dotted key of a value -> its 95% interval. ``ci95: [low, high]`` belongs to its sibling ``accuracy`` (or
    ``win_rate``, ``score``, ``diff``); ``ci95: {...}`` mirrors its siblings' keys (``ci95.subsets.X`` is the interval
    of ``subsets.X``)."""
    out: dict[str, list[float]] = {}
    if not isinstance(obj, dict):
        return out
    ci = obj.get("ci95")
    if isinstance(ci, list) and len(ci) == 2:
        owner = next((k for k in CI_OWNERS if k in obj), None)
        if owner is not None:
            out[_join(prefix, owner)] = ci
    elif isinstance(ci, dict):
        for key, value in flatten_lists(ci).items():
            out[_join(prefix, key)] = value
    for key, value in obj.items():
        if key != "ci95":
            out.update(intervals(value, _join(prefix, key)))
    return out


def flatten_lists(obj, prefix: str = "") -> dict[str, list]:
    """``[low, high]`` leaves of nested dicts, by dotted path."""
    if isinstance(obj, list):
        return {prefix: obj} if len(obj) == 2 else {}
    if not isinstance(obj, dict):
        return {}
    out = {}
    for key, value in obj.items():
        out.update(flatten_lists(value, _join(prefix, key)))
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
    return {"run": str(run_dir), "label": run_dir.name, "command": command, "metrics": flatten(metrics),
            "intervals": intervals(metrics)}


def gather(run_dirs: list[Path]) -> dict:
    runs = [read_run(Path(d)) for d in run_dirs]
    labels = [r["label"] for r in runs]
    if len(set(labels)) < len(labels):  # same folder name under different parents: use the full paths
        for r in runs:
            r["label"] = r["run"]
    keys = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    result = {"runs": runs, "keys": keys, "shared": [k for k in keys if sum(k in r["metrics"] for r in runs) >= 2]}
    result.update(paired_tests(runs))
    return result


# --- paired tests on shared items ---------------------------------------------------------------------------------
def _preference_items(detail: dict) -> tuple[str, dict]:
    groups = {}
    for name, rows in (detail.get("per_pair") or {}).items():
        values = []
        for row in rows:
            ok = row.get("correct")
            if ok is None and "correct" not in row:  # files written before "correct": strict > on the scores
                c, j = row.get("chosen"), row.get("rejected")
                ok = None if c is None or j is None or c != c or j != j else c > j
            values.append((str(row.get("id", "")), None if ok is None else float(bool(ok))))
        groups[name] = values
    return "binary", groups


def _reward_bench_items(detail: dict) -> tuple[str, dict]:
    groups: dict[str, list] = {}
    for row in detail.get("per_pair") or []:
        result = row.get("results")
        groups.setdefault(str(row.get("subset", "")), []).append(
            (str(row.get("id", "")), None if result is None else float(result)))
    return ("binary" if str(detail.get("protocol", "")).endswith("v1") else "mean"), groups


def _rm_bench_items(detail: dict) -> tuple[str, dict]:
    groups: dict[str, list] = {}
    for row in detail.get("per_item") or []:
        matrix = row.get("matrix")
        value = None if matrix is None else sum(map(sum, matrix)) / sum(map(len, matrix))
        groups.setdefault(str(row.get("domain", "")), []).append((str(row.get("id", "")), value))
    return "mean", groups


ITEM_FILES = {"preference.json": ("preference", _preference_items),
              "reward_bench.json": ("reward-bench", _reward_bench_items),
              "rm_bench.json": ("rm-bench", _rm_bench_items)}


def read_items(run_dir: Path) -> tuple[dict, list[str]]:
    """benchmark -> ``{"kind": "binary"|"mean", "groups": {group: {id: value}}, "ambiguous": n}`` from a run's
    per-item files, and notes on files that could not be read. Unscored items are left out; an id repeated within
    a group is ambiguous (left out, counted)."""
    found, notes = {}, []
    for file, (benchmark, reader) in ITEM_FILES.items():
        path = Path(run_dir) / file
        if not path.is_file():
            continue
        try:
            kind, groups = reader(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError) as exc:
            notes.append(f"{path}: unreadable per-item results ({type(exc).__name__}), left out of the paired test")
            continue
        if benchmark == "reward-bench" and kind == "mean":
            benchmark = "reward-bench-2"
        table, ambiguous = {}, 0
        for group, values in groups.items():
            counts: dict[str, int] = {}
            for item_id, _ in values:
                counts[item_id] = counts.get(item_id, 0) + 1
            ambiguous += sum(n for n in counts.values() if n > 1)
            table[group] = {i: v for i, v in values if counts[i] == 1 and v is not None}
        found[benchmark] = {"kind": kind, "groups": table, "ambiguous": ambiguous}
    return found, notes


def compare_items(a: dict, b: dict) -> list[dict]:
    """Paired tests of run B against run A (both from ``read_items``) on every benchmark and group they share,
    plus over all shared items of each benchmark (group ``all``). ``diff`` is B - A."""
    from realm_cli.evaluate.stats import mcnemar, paired_bootstrap

    rows = []
    for benchmark, left in a.items():
        right = b.get(benchmark)
        if right is None:
            continue
        kind = left["kind"]
        pooled = {(g, i): v for g, items in left["groups"].items() for i, v in items.items()}
        other = {(g, i): v for g, items in right["groups"].items() for i, v in items.items()}
        shared = [k for k in pooled if k in other]
        groups = [(g, keys) for g in left["groups"] if (keys := [k for k in shared if k[0] == g])]
        # with one group shared, its test is the "all" one
        for group, keys in ([("all", shared)] if shared else []) + (groups if len(groups) > 1 else []):
            x, y = [pooled[k] for k in keys], [other[k] for k in keys]
            if kind == "binary":
                test = mcnemar([v > 0 for v in x], [v > 0 for v in y])
                test["diff"] = test["b_mean"] - test["a_mean"]
            else:
                test = {"test": "paired-bootstrap", **paired_bootstrap(y, x)}
                test["a_mean"], test["b_mean"] = test["b_mean"], test["a_mean"]
            row = {"benchmark": benchmark, "group": group, **test}
            if group == "all":
                row.update(only_a=len(pooled) - len(shared), only_b=len(other) - len(shared),
                           ambiguous=left["ambiguous"] + right["ambiguous"])
            rows.append(row)
    return rows


def paired_tests(runs: list[dict]) -> dict:
    """``{"paired": [...], "paired_notes": [...]}``: every run after the first tested against the first."""
    if len(runs) < 2:
        return {"paired": [], "paired_notes": []}
    items = [read_items(Path(r["run"])) for r in runs]
    notes = [note for _, n in items for note in n]
    first, paired = runs[0], []
    for run, (found, _) in zip(runs[1:], items[1:]):
        rows = compare_items(items[0][0], found)
        if not items[0][0] or not found:
            notes.append(f"paired test {run['label']} vs {first['label']}: no per-item results in "
                         f"{run['label'] if items[0][0] else first['label']} ({', '.join(ITEM_FILES)})")
        elif not rows:
            notes.append(f"paired test {run['label']} vs {first['label']}: no items shared (items are matched by "
                         f"benchmark, set/subset/domain and id)")
        paired += [{"run_a": first["label"], "run_b": run["label"], **row} for row in rows]
    return {"paired": paired, "paired_notes": notes}


def default_output_dir(run_dirs: list[Path]) -> Path:
    """Where ``realm report`` writes without ``-o``: beside its inputs, in ``report/`` under the run directories'
    common parent (``runs/a runs/b`` -> ``runs/report``), never silently into the current directory."""
    parents = [Path(os.path.abspath(d)).parent for d in run_dirs]
    common = Path(os.path.commonpath([str(p) for p in parents])) if parents else Path.cwd()
    return common / "report"


def write(run_dirs: list[Path], output_dir: Path) -> dict:
    """Gather the runs and write ``report.json`` (and ``report.png`` when there is something to plot; ``plot`` lists
    the metrics it draws, one panel each)."""
    result = gather(run_dirs)
    output_dir.mkdir(parents=True, exist_ok=True)
    result["plot"] = plot(result, output_dir / "report.png")
    (output_dir / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def fmt(value: float | None, ci: list | None = None) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if ci is not None and all(isinstance(b, (int, float)) and not math.isnan(b) for b in ci):
        return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{value:.4g}"


def table(report: dict, only_shared: bool = False):
    from rich.table import Table

    with_ci = any(r.get("intervals") for r in report["runs"])
    out = Table(title="realm report", caption="value \\[low, high]: its 95% bootstrap interval, as the run recorded it"
                if with_ci else None)
    out.add_column("metric", overflow="fold")
    for r in report["runs"]:
        out.add_column(f"{r['label']}\n[dim]{r['command']}[/dim]", justify="right")
    for key in report["shared"] if only_shared else report["keys"]:
        out.add_row(key, *[fmt(r["metrics"].get(key), r.get("intervals", {}).get(key)) for r in report["runs"]])
    return out


def paired_tables(report: dict) -> list:
    """The paired tests as tables, one per run tested against the first (none when there are no tests)."""
    from rich.table import Table

    tables = {}
    for r in report.get("paired") or []:
        key = (r["run_a"], r["run_b"])
        if key not in tables:
            tables[key] = Table(title=f"paired test: {r['run_b']} (B) vs {r['run_a']} (A) on shared items",
                                caption="McNemar (pair correctness): b = items only A gets right, c = only B; exact "
                                        "under 25 discordant items, else chi-square with continuity correction. "
                                        "Item means: paired bootstrap, 95% interval of B - A. Significant: p < 0.05")
            for col in ("items of", "n", "A", "B", "B - A", "test", "p", "sig."):
                tables[key].add_column(col, justify="left" if col in ("items of", "test") else "right",
                                       overflow="fold")
        if "c" in r:
            test = f"McNemar {'exact' if r['test'] == 'mcnemar-exact' else 'chi2'} b={r['b']} c={r['c']}"
        else:
            test = f"bootstrap [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"
        p = "< 0.001" if r["p_value"] < 0.001 else f"{r['p_value']:.3g}"
        tables[key].add_row(f"{r['benchmark']}: {r['group']}", str(r["items"]), f"{r['a_mean']:.3f}",
                            f"{r['b_mean']:.3f}", f"{r['diff']:+.3f}", test, p,
                            "[bold]yes[/bold]" if r["significant"] else "no")
    return list(tables.values())


def plot_keys(report: dict, max_metrics: int = 16) -> list[str]:
    """The metrics the PNG draws: those shared by at least two runs (or all metrics of a single run), at most
    ``max_metrics``."""
    keys = report["shared"] or (report["keys"] if len(report["runs"]) == 1 else [])
    return keys[:max_metrics]


def figure(report: dict, keys: list[str]):
    """One panel per metric, each on its own y axis (a pair count of 400 and an accuracy of 0.55 on one linear axis
    would leave the accuracy invisible): a bar per run, with its 95% interval when the run recorded one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    cols = min(4, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.0, 1.2 + 0.5 * len(runs)) * cols, 2.6 * rows + 0.6),
                             squeeze=False)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for ax, key in zip(axes.flat, keys):
        values = [r["metrics"].get(key, float("nan")) for r in runs]
        cis = [r.get("intervals", {}).get(key) or [v, v] for r, v in zip(runs, values)]
        errors = [[max(0.0, v - ci[0]) for v, ci in zip(values, cis)],
                  [max(0.0, ci[1] - v) for v, ci in zip(values, cis)]]
        ax.bar(range(len(runs)), values, color=colors, yerr=errors, capsize=2)
        ax.set_title(key, fontsize=8)
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([r["label"] for r in runs], rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.axhline(0, color="grey", linewidth=0.8)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.suptitle("realm report: one panel per metric (own scale)", fontsize=9)
    fig.tight_layout()
    return fig


def plot(report: dict, path: Path, max_metrics: int = 16) -> list[str]:
    """Write ``figure`` to ``path``; the metrics drawn ([] and no file when there is nothing to plot)."""
    keys = plot_keys(report, max_metrics)
    if not keys:
        return []
    import matplotlib.pyplot as plt

    fig = figure(report, keys)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return keys
