"""RewardBench with any reward plugin: v1 pairs (strict `>`, subsets, count-weighted sections, overall) and
RewardBench 2 items (best-of-n, the Ties rule, mean of subsets), each score with its 95% bootstrap interval and its
count of exact score ties, v1 subsets with their length baselines; scored in fp32 unless the reward block says
otherwise, the scoring settings (max_length, dtype, truncation) recorded; a rich table, reward-bench-style JSON, and
a PNG by subset."""

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
    ci_resamples: int = 1000  # bootstrap resamples of every 95% interval
    ci_seed: int = 0

    def __post_init__(self):
        if not self.data:
            raise ValueError("data: at least one dataset is required")
        if self.ci_resamples < 1:
            raise ValueError(f"ci_resamples: expected a positive integer, got {self.ci_resamples}")


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


def score_texts(reward, texts: list[tuple], batch_size: int, progress, where) -> dict[tuple, float] | None:
    """Score each distinct (prompt, response) once, over the processes of a launched run (``where``: a Sharding);
    keys are (prompt json, response). None on a rank other than the main one."""
    from realm_cli.evaluate.shards import score_units

    unique = list(dict.fromkeys(texts))
    scores = score_units(reward, [[(json.loads(p), resp)] for p, resp in unique], batch_size, where, progress,
                         "responses")
    return None if scores is None else {text: s[0] for text, s in zip(unique, scores)}


def v1_scores(records: list, scores: dict) -> tuple[dict, list[dict]]:
    """v1: every record is a pair, right iff its chosen response strictly outscores the rejected one."""
    from realm_cli.evaluate import reward_bench as rbs

    rows = []
    for r in records:
        p = json.dumps(r.prompt, sort_keys=True)
        c, j = scores[(p, r.chosen)], scores[(p, r.rejected)]
        ok = rbs.pair_correct(c, j)
        rows.append({"id": r.id, "subset": subset_of(r), "scores_chosen": c, "scores_rejected": j,
                     "results": None if ok is None else int(ok), "chars_chosen": len(r.chosen),
                     "chars_rejected": len(r.rejected)})
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


def evaluate(records: list, reward, config: RewardBenchConfig, progress, where) -> tuple[dict, list[dict]] | None:
    """The protocol summary and the per-item rows (reward-bench's scores_chosen / scores_rejected / results); None
    on a rank other than the main one of a launched run (``where``: the Sharding of the scoring).

    v2 scores whole items, so an item a dataset ``limit`` cut short is left out and counted as ``incomplete``."""
    from realm_cli.evaluate import reward_bench as rbs

    items = group_items(records)
    complete = [i for i in items if i["complete"]]
    protocol = config.protocol
    if protocol == "auto":
        protocol = "v2" if all(len(i["chosen"]) + len(i["rejected"]) > 2 for i in complete) else "v1"
    scored = complete if protocol == "v2" else items
    texts = [(json.dumps(i["prompt"], sort_keys=True), resp) for i in scored for resp in i["chosen"] + i["rejected"]]
    scores = score_texts(reward, texts, config.batch_size, progress, where)
    if scores is None:
        return None
    kw = {"resamples": config.ci_resamples, "seed": config.ci_seed}
    if protocol == "v1":
        summary, rows = v1_scores(records, scores)
        v1_extras(summary, rows, kw)
    else:
        summary, rows = v2_scores(complete, scores)
        summary["incomplete"] = len(items) - len(complete)
        rbs.v2_intervals(summary, [(r["subset"], r["id"], r["scores_chosen"], r["scores_rejected"]) for r in rows],
                         **kw)
    for name, row in summary["subsets"].items():
        row["exact_ties"] = sum(1 for r in rows if r["subset"] == name
                                and rbs.exact_ties(name, as_list(r["scores_chosen"]), as_list(r["scores_rejected"])))
    summary["exact_ties"] = sum(row["exact_ties"] for row in summary["subsets"].values())
    summary["unscored"] = sum(row["unscored"] for row in summary["subsets"].values())
    summary.update(ci_resamples=config.ci_resamples, ci_seed=config.ci_seed)
    summary["scoring"] = rbs.scoring_record(reward, [(json.loads(p), resp) for p, resp in dict.fromkeys(texts)])
    return summary, rows


def as_list(scores) -> list[float]:
    """A v1 row's one score or a v2 row's list, as a list."""
    return list(scores) if isinstance(scores, (list, tuple)) else [scores]


def v1_extras(summary: dict, rows: list[dict], kw: dict) -> None:
    """Intervals (``v1_intervals``) and, per subset, the length baselines on its scored pairs."""
    from realm_cli.evaluate import reward_bench as rbs
    from realm_cli.evaluate.stats import length_baselines

    scored: dict[str, list[dict]] = {}
    for row in rows:
        if row["results"] is not None:
            scored.setdefault(row["subset"], []).append(row)
    rbs.v1_intervals(summary, {s: [float(r["results"]) for r in rs] for s, rs in scored.items()}, **kw)
    for name, row in summary["subsets"].items():
        pairs = scored.get(name, [])
        row["length"] = length_baselines([r["chars_chosen"] for r in pairs], [r["chars_rejected"] for r in pairs],
                                         [bool(r["results"]) for r in pairs], **kw)


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


def caption(summary: dict) -> str:
    """How the numbers were made: the intervals, the scoring settings, the exact ties, the Ties parts."""
    scoring = summary.get("scoring") or {}
    parts = [f"intervals: 95% bootstrap ({summary.get('ci_resamples', 1000)} resamples, seed "
             f"{summary.get('ci_seed', 0)})"]
    how = [f"dtype {scoring['dtype']}" if scoring.get("dtype") else "",
           f"max_length {scoring['max_length']}" if scoring.get("max_length") else "",
           f"{scoring['truncated_inputs']} inputs truncated" if scoring.get("truncated_inputs") is not None else ""]
    if any(how):
        parts.append("scored with " + ", ".join(h for h in how if h))
    wrong = "counted wrong" if summary["protocol"].endswith("v1") else "sharing credit"
    parts.append(f"{summary.get('exact_ties', 0)} exact score ties ({wrong})")
    extra = ties_caption(summary)
    return "; ".join(parts + ([extra] if extra else []))


def print_table(summary: dict, reward_name: str, console) -> None:
    from rich.table import Table

    from realm_cli.evaluate import reward_bench as rbs
    from realm_cli.evaluate.stats import format_ci

    v1 = summary["protocol"].endswith("v1")
    table = Table(title=f"RewardBench ({summary['protocol']}) — reward {reward_name}", caption=caption(summary))
    for col in ("section", "subset", "pairs" if v1 else "items", "accuracy [95% CI]", "ties", "weight"):
        table.add_column(col, justify="left" if col in ("section", "subset") else "right",
                         overflow="fold")
    for name, row in summary["subsets"].items():
        table.add_row(rbs.SUBSET_SECTION.get(name, "") if v1 else "", name, str(row["n"]),
                      format_ci(row["accuracy"], row.get("ci95")), str(row.get("exact_ties", "")),
                      str(rbs.EXAMPLE_COUNTS.get(name, "")) if v1 else "")
    for name, sec in summary.get("sections", {}).items():
        table.add_row(f"[bold]{name}[/bold]", "partial, missing " + ", ".join(sec["missing"]) if sec["partial"]
                      else "all subsets", "", f"[bold]{format_ci(sec['score'], sec.get('ci95'))}[/bold]", "", "")
    if summary["overall"] is not None:
        missing = summary.get("missing_sections" if v1 else "missing_subsets")
        note = f" (partial: {', '.join(missing)} missing)" if missing else ""
        table.add_row("[bold]overall[/bold]", note, "",
                      f"[bold]{format_ci(summary['overall'], summary.get('overall_ci95'))}[/bold]", "", "")
    console.print(table)
    if v1:
        console.print(length_table(summary, reward_name))


def length_table(summary: dict, reward_name: str):
    """Per v1 subset: the reward beside "longer wins" and "shorter wins" on the same pairs."""
    from rich.table import Table

    from realm_cli.evaluate.stats import beats, format_ci

    table = Table(title=f"length baselines (characters) — reward {reward_name}",
                  caption="equal lengths count wrong for both baselines; margin: RM minus the better baseline, "
                          "paired bootstrap")
    for col in ("subset", "RM", "longer wins", "shorter wins", "RM | longer rejected", "margin [95% CI]",
                "beats it?"):
        table.add_column(col, justify="left" if col == "subset" else "right",
                         overflow="fold")
    for name, row in summary["subsets"].items():
        length, where = row["length"], row["length"]["rm_where_longer_rejected"]
        margin = length["margin_over_best_baseline"]
        table.add_row(name, format_ci(row["accuracy"]), format_ci(length["longer_wins"]["accuracy"]),
                      format_ci(length["shorter_wins"]["accuracy"]), f"{format_ci(where['accuracy'])} (n={where['n']})",
                      format_ci(margin["diff"], margin["ci95"]), beats(margin))
    return table


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from realm_cli.evaluate import reward_bench as rbs

    subsets = [(n, r["accuracy"], r.get("ci95") or [r["accuracy"]] * 2) for n, r in summary["subsets"].items()
               if r["accuracy"] is not None]
    sections = list(rbs.SECTIONS) + ["other"]
    colours = dict(zip(sections, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(subsets) + 2), 4))
    errors = [[max(0.0, 100 * (a - ci[0])) for _, a, ci in subsets], [max(0.0, 100 * (ci[1] - a))
                                                                      for _, a, ci in subsets]]
    ax.bar([n for n, *_ in subsets], [100 * a for _, a, _ in subsets], yerr=errors, capsize=3,
           color=[colours[rbs.SUBSET_SECTION.get(n, "other")] for n, *_ in subsets])
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

        from realm_cli import distributed
        from realm_cli.config import to_dict
        from realm_cli.evaluate.reward_bench import fp32_reward
        from realm_cli.evaluate.shards import sharding
        from realm_cli.rewards.build import build_reward
        from realm_cli.rewards.shards import bind_device

        console = Console(stderr=True)
        records = load_records(self.config.data)
        reward_spec = fp32_reward(self.config.reward)  # ties are wrong in v1: score in fp32 unless told otherwise
        bind_device()
        reward = build_reward(reward_spec)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=console, disable=not distributed.is_main_process()) as progress:
                where = sharding(output_dir, "reward-bench", reward_spec)  # the shards of the scoring
                result = evaluate(records, reward, self.config, progress, where)
        finally:
            reward.close()
        if result is None:  # another rank of a launched run: its share is scored, rank 0 does the rest
            return {}
        summary, rows = result
        output_dir.mkdir(parents=True, exist_ok=True)
        reward_block = to_dict(reward_spec)
        result = {"model": reward_block, "model_type": "realm reward plugin", **summary,
                  "results": {n: r["accuracy"] for n, r in summary["subsets"].items()}}
        (output_dir / "reward_bench.json").write_text(json.dumps({**result, "per_pair": rows}, indent=1) + "\n")
        if self.config.plot:
            plot(summary, output_dir / "reward_bench.png", f"RewardBench by subset — {self.config.reward.name}")
        print_table(summary, self.config.reward.name, console)
        metrics = {"protocol": summary["protocol"], "overall": summary["overall"], "partial": summary["partial"],
                   "subsets": result["results"], "pairs": len(rows), "unscored": summary["unscored"],
                   "exact_ties": summary["exact_ties"], "scoring": summary["scoring"],
                   "ci95": {"overall": summary.get("overall_ci95"),
                            "subsets": {n: r.get("ci95") for n, r in summary["subsets"].items()}},
                   "ci_resamples": self.config.ci_resamples, "ci_seed": self.config.ci_seed}
        if "sections" in summary:
            metrics["sections"] = {n: s["score"] for n, s in summary["sections"].items()}
            metrics["ci95"]["sections"] = {n: s.get("ci95") for n, s in summary["sections"].items()}
        if summary["protocol"].endswith("v1"):
            metrics["length_baselines"] = {n: {k: r["length"][k]["accuracy"] for k in
                                               ("longer_wins", "shorter_wins", "rm_where_longer_rejected")}
                                           for n, r in summary["subsets"].items()}
        return metrics


@hookimpl
def register_evaluators(register):
    register("reward-bench", RewardBenchEvaluator,
             description="RewardBench v1/v2 protocol with any reward: subsets, sections or the Ties rule, overall")
