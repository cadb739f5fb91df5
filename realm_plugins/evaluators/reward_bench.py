"""RewardBench with any reward plugin: v1 pairs (strict `>`, subsets, count-weighted sections, overall) and
RewardBench 2 items (best-of-n, the Ties rule, mean of subsets); a rich table, reward-bench-style JSON, and a PNG by
subset."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.errors import RealmError
from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Evaluator


@dataclass
class RewardBenchConfig:
    reward: PluginSpec = plugin_field("reward", default_factory=lambda: PluginSpec("embedding"))
    data: list[PluginSpec] = plugin_field("dataset", default_factory=lambda: [PluginSpec("reward-bench")])
    # v1: every record is a pair; v2: the records a source gave one id form one item (see group_items);
    # auto: v2 when every item has more than two responses.
    protocol: Literal["auto", "v1", "v2"] = "auto"
    batch_size: int = 64  # (prompt, response) pairs per reward call
    plot: bool = True

    def __post_init__(self):
        if not self.data:
            raise ValueError("data: at least one dataset is required")


def subset_of(record) -> str:
    return str(record.meta.get("subset") or record.source or "unknown")


def load_records(specs: list[PluginSpec]) -> list:
    from realm_cli.contracts import PreferenceRecord
    from realm_cli.data.load import load_source

    records = []
    for spec in specs:
        loaded = load_source(spec).records
        if loaded and not isinstance(loaded[0], PreferenceRecord):
            raise RealmError(f"dataset {spec.name} yields {type(loaded[0]).__name__} records, not preference pairs")
        records.extend(loaded)
    if not records:
        raise RealmError("reward-bench: the datasets gave no pairs")
    return records


def group_items(records: list) -> list[dict]:
    """Records with the same source, subset, id and prompt -> one item with its chosen and rejected responses.

    A response's slot is its index in the source row when the record carries one (``chosen_index`` /
    ``rejected_index``: a RewardBench 2 row flattened into chosen x rejected pairs), else its text. ``complete`` is
    False when the row said it had more responses (``num_correct`` / ``num_incorrect``) than arrived, i.e. a
    dataset ``limit`` cut it."""
    slots: dict[tuple, dict] = {}
    for r in records:
        key = (r.source, subset_of(r), r.id, json.dumps(r.prompt, sort_keys=True))
        item = slots.setdefault(key, {"id": r.id, "subset": subset_of(r), "prompt": r.prompt, "chosen": {},
                                      "rejected": {}, "sizes": (r.meta.get("num_correct"),
                                                                r.meta.get("num_incorrect"))})
        item["chosen"].setdefault(r.meta.get("chosen_index", r.chosen), r.chosen)
        item["rejected"].setdefault(r.meta.get("rejected_index", r.rejected), r.rejected)
    items = []
    for item in slots.values():
        sizes = item.pop("sizes")
        item["chosen"], item["rejected"] = list(item["chosen"].values()), list(item["rejected"].values())
        item["complete"] = sizes[0] is None or sizes == (len(item["chosen"]), len(item["rejected"]))
        items.append(item)
    return items


def score_texts(reward, texts: list[tuple], batch_size: int, progress) -> dict[tuple, float]:
    """Score each distinct (prompt, response) once; keys are (prompt json, response)."""
    unique = list(dict.fromkeys(texts))
    task = progress.add_task("scoring responses", total=len(unique))
    scores = {}
    for start in range(0, len(unique), batch_size):
        chunk = unique[start:start + batch_size]
        values = reward.score([json.loads(p) for p, _ in chunk], [resp for _, resp in chunk])
        if len(values) != len(chunk):
            raise RealmError(f"reward returned {len(values)} scores for {len(chunk)} responses")
        scores.update(zip(chunk, (float(v) for v in values)))
        progress.advance(task, len(chunk))
    return scores


def v1_scores(records: list, scores: dict) -> tuple[dict, list[dict]]:
    """v1: every record is a pair, right iff its chosen response strictly outscores the rejected one."""
    from realm_cli.evaluate import reward_bench as rbs

    rows = []
    for r in records:
        p = json.dumps(r.prompt, sort_keys=True)
        c, j = scores[(p, r.chosen)], scores[(p, r.rejected)]
        ok = rbs.pair_correct(c, j)
        rows.append({"id": r.id, "subset": subset_of(r), "scores_chosen": c, "scores_rejected": j,
                     "results": None if ok is None else int(ok)})
    summary = rbs.v1_summary((row["subset"], None if row["results"] is None else bool(row["results"]))
                             for row in rows)
    return summary, rows


def v2_scores(items: list[dict], scores: dict) -> tuple[dict, list[dict]]:
    """RewardBench 2: every item with the score lists of its chosen and rejected responses."""
    from realm_cli.evaluate import reward_bench as rbs

    rows = []
    for item in items:
        p = json.dumps(item["prompt"], sort_keys=True)
        c, rej = ([scores[(p, resp)] for resp in item[side]] for side in ("chosen", "rejected"))
        rows.append({"id": item["id"], "subset": item["subset"], "scores_chosen": c, "scores_rejected": rej,
                     "results": rbs.v2_item_result(item["subset"], item["id"], c, rej)})
    summary = rbs.v2_summary((row["subset"], row["id"], row["scores_chosen"], row["scores_rejected"])
                             for row in rows)
    return summary, rows


def evaluate(records: list, reward, config: RewardBenchConfig, progress) -> tuple[dict, list[dict]]:
    """The protocol summary and the per-item rows (reward-bench's scores_chosen / scores_rejected / results).

    v2 scores whole items, so an item a dataset ``limit`` cut short is left out and counted as ``incomplete``."""
    items = group_items(records)
    complete = [i for i in items if i["complete"]]
    protocol = config.protocol
    if protocol == "auto":
        protocol = "v2" if all(len(i["chosen"]) + len(i["rejected"]) > 2 for i in complete) else "v1"
    scored = complete if protocol == "v2" else items
    texts = [(json.dumps(i["prompt"], sort_keys=True), resp) for i in scored for resp in i["chosen"] + i["rejected"]]
    scores = score_texts(reward, texts, config.batch_size, progress)
    if protocol == "v1":
        summary, rows = v1_scores(records, scores)
    else:
        summary, rows = v2_scores(complete, scores)
        summary["incomplete"] = len(items) - len(complete)
    summary["unscored"] = sum(row["unscored"] for row in summary["subsets"].values())
    return summary, rows


def ties_caption(summary: dict) -> str | None:
    """The parts of the RewardBench 2 Ties score, and how many items a limit cut short, for the table caption."""
    notes = []
    ties = summary["subsets"].get("Ties", {}).get("ties")
    if ties and ties["score"] is not None:
        notes.append("Ties = .3 tied acc {tied_accuracy:.3f} + .3 ref acc {ref_accuracy:.3f} + .2 preferred "
                     "{preferred:.3f} + .2 preferred_hard {preferred_hard:.3f} + .01 margin {margin:.3f} "
                     "over {paired_prompts} prompts".format(**ties))
    elif ties:
        notes.append("Ties: no prompt has both its ref and tied rows, so no score")
    if summary.get("incomplete"):
        notes.append(f"{summary['incomplete']} items cut short by the limit left out")
    return "; ".join(notes) or None


def print_table(summary: dict, reward_name: str, console) -> None:
    from rich.table import Table

    from realm_cli.evaluate import reward_bench as rbs

    v1 = summary["protocol"].endswith("v1")
    table = Table(title=f"RewardBench ({summary['protocol']}) — reward {reward_name}", caption=ties_caption(summary))
    for col in ("section", "subset", "pairs" if v1 else "items", "accuracy", "weight"):
        table.add_column(col, justify="left" if col in ("section", "subset") else "right")
    for name, row in summary["subsets"].items():
        acc = "n/a" if row["accuracy"] is None else f"{100 * row['accuracy']:.1f}"
        table.add_row(rbs.SUBSET_SECTION.get(name, "") if v1 else "", name, str(row["n"]), acc,
                      str(rbs.EXAMPLE_COUNTS.get(name, "")) if v1 else "")
    for name, sec in summary.get("sections", {}).items():
        table.add_row(f"[bold]{name}[/bold]", "partial, missing " + ", ".join(sec["missing"]) if sec["partial"]
                      else "all subsets", "", f"[bold]{100 * sec['score']:.1f}[/bold]", "")
    if summary["overall"] is not None:
        missing = summary.get("missing_sections" if v1 else "missing_subsets")
        note = f" (partial: {', '.join(missing)} missing)" if missing else ""
        table.add_row("[bold]overall[/bold]", note, "", f"[bold]{100 * summary['overall']:.1f}[/bold]", "")
    console.print(table)


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from realm_cli.evaluate import reward_bench as rbs

    subsets = [(n, r["accuracy"]) for n, r in summary["subsets"].items() if r["accuracy"] is not None]
    sections = list(rbs.SECTIONS) + ["other"]
    colours = dict(zip(sections, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(subsets) + 2), 4))
    ax.bar([n for n, _ in subsets], [100 * a for _, a in subsets],
           color=[colours[rbs.SUBSET_SECTION.get(n, "other")] for n, _ in subsets])
    ax.axhline(50 if summary["protocol"].endswith("v1") else 25, color="grey", linestyle="--", linewidth=1,
               label="chance")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class RewardBenchEvaluator(Evaluator):
    Config = RewardBenchConfig

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from realm_cli.config import to_dict
        from realm_cli.rewards.build import build_reward

        console = Console(stderr=True)
        records = load_records(self.config.data)
        reward = build_reward(self.config.reward)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console) as progress:
                summary, rows = evaluate(records, reward, self.config, progress)
        finally:
            reward.close()
        output_dir.mkdir(parents=True, exist_ok=True)
        reward_block = to_dict(self.config.reward)
        result = {"model": reward_block, "model_type": "realm reward plugin", **summary,
                  "results": {n: r["accuracy"] for n, r in summary["subsets"].items()}}
        (output_dir / "reward_bench.json").write_text(json.dumps({**result, "per_pair": rows}, indent=1) + "\n")
        if self.config.plot:
            plot(summary, output_dir / "reward_bench.png", f"RewardBench by subset — {self.config.reward.name}")
        print_table(summary, self.config.reward.name, console)
        metrics = {"protocol": summary["protocol"], "overall": summary["overall"], "partial": summary["partial"],
                   "subsets": result["results"], "pairs": len(rows), "unscored": summary["unscored"]}
        if "sections" in summary:
            metrics["sections"] = {n: s["score"] for n, s in summary["sections"].items()}
        return metrics


@hookimpl
def register_evaluators(register):
    register("reward-bench", RewardBenchEvaluator,
             description="RewardBench v1/v2 protocol with any reward: subsets, sections or the Ties rule, overall")
