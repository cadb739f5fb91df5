"""RM-Bench (THU-KEG/RM-Bench) with any reward plugin: the 3x3 style matrix of every item, hard / normal / easy
accuracy per domain and overall, each with its 95% bootstrap interval; scored in fp32 unless the reward block says
otherwise, the scoring settings and the exact score ties recorded; a rich table and ``rm_bench.json``.

The arithmetic follows RM-Bench's ``scripts/utils.py`` (``compute_accuracy``, ``split_dataset_by_domain``):

- an item's chosen and rejected responses come in three styles (concise, detailed, detailed+markdown); its matrix
  is M[i][j] = 1 if score(chosen_i) > score(rejected_j) else 0 (strictly: an exact tie is wrong);
- a domain's matrix is the mean of its items' matrices; hard = the mean of its upper-right triangle (i < j: the
  chosen response less formatted than the rejected one), normal = the mean of the diagonal (same style), easy = the
  mean of the lower-left triangle (i > j); the domain's average is the mean of the three;
- the domains are chat, math, code and safety, a row's domain going to the first that it starts with (so
  safety-refuse and safety-response pool into safety; they are also reported on their own); hard / normal / easy
  overall = the mean over the domains, and the overall score (RM-Bench's ``total_avg_acc``) = the mean of the domain
  averages, which equals the mean of hard, normal and easy by construction. With a domain absent the means run over
  the present ones and the result is marked partial.

Intervals: within a domain the items are resampled; the overall numbers use a stratified bootstrap (each domain's
items resampled within the domain, its size kept). An item with a ``nan`` score is left out and counted as
``unscored``; an item missing a style (a ``limit`` cut it) is left out and counted as ``incomplete``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.contracts import Evaluator
from realm_cli.errors import RealmError
from realm_cli.hookspecs import hookimpl

STYLES = ("concise", "detailed", "detailed+markdown")
DOMAINS = ("chat", "math", "code", "safety")  # scripts/utils.py split_dataset_by_domain, in its order
LEVELS = ("hard", "normal", "easy")


@dataclass
class RMBenchConfig:
    reward: PluginSpec = plugin_field("reward", default_factory=lambda: PluginSpec("embedding"))
    data: list[PluginSpec] = plugin_field("dataset", default_factory=lambda: [PluginSpec("rm-bench")])
    batch_size: int = 64  # (prompt, response) pairs per reward call
    ci_resamples: int = 1000  # bootstrap resamples of every 95% interval
    ci_seed: int = 0

    def __post_init__(self):
        if not self.data:
            raise ValueError("data: at least one dataset is required")
        if self.ci_resamples < 1:
            raise ValueError(f"ci_resamples: expected a positive integer, got {self.ci_resamples}")


def official_domain(domain: str) -> str:
    """The RM-Bench domain a row's domain counts under: the first of DOMAINS it starts with, else itself."""
    return next((d for d in DOMAINS if domain.startswith(d)), domain)


def comparison_matrix(chosen: list[float], rejected: list[float]) -> list[list[int]] | None:
    """M[i][j] = 1 if chosen style i strictly outscores rejected style j; None when a score is nan."""
    if any(math.isnan(x) for x in [*chosen, *rejected]):
        return None
    return [[int(c > r) for r in rejected] for c in chosen]


def item_levels(matrix: list[list[int]]) -> dict[str, float]:
    """One item's hard (i < j), normal (i == j), easy (i > j) accuracy and the average of the three."""
    n = len(matrix)
    cells = {"hard": [matrix[i][j] for i in range(n) for j in range(n) if i < j],
             "normal": [matrix[i][i] for i in range(n)],
             "easy": [matrix[i][j] for i in range(n) for j in range(n) if i > j]}
    out = {k: sum(v) / len(v) for k, v in cells.items()}
    out["average"] = sum(out[k] for k in LEVELS) / len(LEVELS)
    return out


def _mean(values) -> float:
    return float(values.mean()) if hasattr(values, "mean") else sum(values) / len(values)


def summarise(items: list[dict], *, resamples: int = 1000, seed: int = 0) -> dict:
    """``items``: ``{"id", "row_domain", "matrix" (None: unscored), "exact_ties"}`` -> the RM-Bench report (see the
    module docstring): ``domains`` (official ones first, then others), ``subdomains`` (a row's own domain where it
    differs from the one it counts under), ``hard``/``normal``/``easy``/``overall`` with intervals, what is missing."""
    from realm_cli.evaluate.stats import ci_fields

    kw = {"resamples": resamples, "seed": seed}

    def block(group: list[dict]) -> dict:
        scored = [item_levels(i["matrix"]) for i in group if i["matrix"] is not None]
        out = {"items": len(scored), "unscored": len(group) - len(scored),
               "exact_ties": sum(i["exact_ties"] for i in group)}
        for level in (*LEVELS, "average"):
            values = [s[level] for s in scored]
            out[level] = {"accuracy": sum(values) / len(values) if values else None,
                          "ci95": ci_fields(values, **kw)["ci95"]}
        return out

    by_domain: dict[str, list[dict]] = {}
    by_row_domain: dict[str, list[dict]] = {}
    for item in items:
        by_domain.setdefault(official_domain(item["row_domain"]), []).append(item)
        if official_domain(item["row_domain"]) != item["row_domain"]:
            by_row_domain.setdefault(item["row_domain"], []).append(item)
    order = [d for d in DOMAINS if d in by_domain] + [d for d in by_domain if d not in DOMAINS]
    domains = {d: block(by_domain[d]) for d in order}
    present = [d for d in DOMAINS if d in domains and domains[d]["items"]]
    out = {"protocol": "rm-bench", "domains": domains, "subdomains": {d: block(g) for d, g in by_row_domain.items()},
           "partial": len(present) < len(DOMAINS), "missing_domains": [d for d in DOMAINS if d not in present],
           "other_domains": [d for d in order if d not in DOMAINS],
           "exact_ties": sum(i["exact_ties"] for i in items),
           "unscored": sum(1 for i in items if i["matrix"] is None), "ci_resamples": resamples, "ci_seed": seed}
    strata = {level: {d: [item_levels(i["matrix"])[level] for i in by_domain[d] if i["matrix"] is not None]
                      for d in present} for level in (*LEVELS, "average")}
    for level, name in (("hard", "hard"), ("normal", "normal"), ("easy", "easy"), ("average", "overall")):
        if not present:
            out[name] = {"accuracy": None, "ci95": [math.nan, math.nan]}
            continue
        value = sum(domains[d][level]["accuracy"] for d in present) / len(present)
        ci = ci_fields(strata[level], lambda drawn: sum(_mean(v) for v in drawn.values()) / len(drawn), **kw)
        out[name] = {"accuracy": value, "ci95": ci["ci95"]}
    return out


def group_items(records: list) -> list[dict]:
    """RM-Bench records (one per style) -> items ``{id, domain, prompt, chosen[3], rejected[3], complete}``."""
    slots: dict[tuple, dict] = {}
    for r in records:
        index = r.meta.get("style_index")
        if not isinstance(index, int) or not 0 <= index < len(STYLES):
            raise RealmError(f"rm-bench: record {r.id!r} of dataset {r.source or '?'} has no RM-Bench style index "
                             f"(meta style_index 0-2): read RM-Bench files with the rm-bench dataset")
        key = (r.source, r.id, json.dumps(r.prompt, sort_keys=True))
        item = slots.setdefault(key, {"id": r.id, "domain": str(r.meta.get("domain", "unknown")), "prompt": r.prompt,
                                      "chosen": [None] * len(STYLES), "rejected": [None] * len(STYLES)})
        item["chosen"][index], item["rejected"][index] = r.chosen, r.rejected
    for item in slots.values():
        item["complete"] = None not in item["chosen"] and None not in item["rejected"]
    return list(slots.values())


def evaluate(records: list, reward, config: RMBenchConfig, progress, where) -> tuple[dict, list[dict]] | None:
    """Score every response of every complete item once; the summary and the per-item rows. None on a rank other
    than the main one of a launched run (``where``: the Sharding of the scoring)."""
    from realm_cli.evaluate import reward_bench as rbs
    from realm_plugins.evaluators.reward_bench import score_texts

    items = group_items(records)
    complete = [i for i in items if i["complete"]]
    if not complete:
        raise RealmError(f"rm-bench: none of the {len(items)} items has all three styles (is --limit too small?)")
    texts = [(json.dumps(i["prompt"], sort_keys=True), resp) for i in complete for resp in i["chosen"] + i["rejected"]]
    scores = score_texts(reward, texts, config.batch_size, progress, where)
    if scores is None:
        return None
    rows = []
    for item in complete:
        p = json.dumps(item["prompt"], sort_keys=True)
        c, r = ([scores[(p, resp)] for resp in item[side]] for side in ("chosen", "rejected"))
        # domain: the one it counts under (chat, math, code, safety); row_domain: the row's own (e.g. safety-refuse)
        rows.append({"id": item["id"], "domain": official_domain(item["domain"]), "row_domain": item["domain"],
                     "scores_chosen": c, "scores_rejected": r,
                     "matrix": comparison_matrix(c, r),
                     "exact_ties": sum(1 for x in c for y in r if x == y)})
    summary = summarise(rows, resamples=config.ci_resamples, seed=config.ci_seed)
    summary["incomplete"] = len(items) - len(complete)
    summary["scoring"] = rbs.scoring_record(reward, [(json.loads(p), resp) for p, resp in dict.fromkeys(texts)])
    return summary, rows


def print_table(summary: dict, reward_name: str, console) -> None:
    from rich.table import Table

    from realm_cli.evaluate.stats import format_ci

    scoring = summary["scoring"]
    how = ", ".join(x for x in (f"dtype {scoring['dtype']}" if scoring.get("dtype") else "",
                                f"max_length {scoring['max_length']}" if scoring.get("max_length") else "") if x)
    notes = ["hard: chosen less formatted than rejected; normal: same style; easy: chosen more formatted",
             "overall = mean of the domains' averages",
             f"intervals: 95% bootstrap ({summary['ci_resamples']} resamples, seed {summary['ci_seed']})",
             f"{summary['exact_ties']} exact score ties (counted wrong)" + (f"; scored with {how}" if how else "")]
    if summary["incomplete"]:
        notes.append(f"{summary['incomplete']} items missing a style left out")
    table = Table(title=f"RM-Bench — reward {reward_name}", caption="; ".join(notes))
    for col in ("domain", "items", "hard [95% CI]", "normal [95% CI]", "easy [95% CI]", "average [95% CI]", "ties"):
        table.add_column(col, justify="left" if col == "domain" else "right",
                         overflow="fold")
    rows = [(d if d in DOMAINS else f"{d} (not counted)", b) for d, b in summary["domains"].items()]
    rows += [(f"  {d}", b) for d, b in summary["subdomains"].items()]  # e.g. safety-refuse, within safety
    for name, b in rows:
        table.add_row(name, str(b["items"]),
                      *[format_ci(b[k]["accuracy"], b[k]["ci95"]) for k in (*LEVELS, "average")], str(b["exact_ties"]))
    partial = f" (partial: {', '.join(summary['missing_domains'])} missing)" if summary["partial"] else ""
    table.add_row(f"[bold]overall[/bold]{partial}", "",
                  *[f"[bold]{format_ci(summary[k]['accuracy'], summary[k]['ci95'])}[/bold]"
                    for k in (*LEVELS, "overall")], "")
    console.print(table)


class RMBenchEvaluator(Evaluator):
    Config = RMBenchConfig

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from realm_cli import distributed
        from realm_cli.config import to_dict
        from realm_cli.evaluate.reward_bench import fp32_reward
        from realm_cli.evaluate.shards import sharding
        from realm_cli.rewards.build import build_reward
        from realm_cli.rewards.shards import bind_device
        from realm_plugins.evaluators.reward_bench import load_records

        console = Console(stderr=True)
        records = load_records(self.config.data)
        reward_spec = fp32_reward(self.config.reward)  # ties are wrong: score in fp32 unless told otherwise
        bind_device()
        reward = build_reward(reward_spec)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console,
                          disable=not distributed.is_main_process()) as progress:
                result = evaluate(records, reward, self.config, progress, sharding(output_dir, "rm-bench", reward_spec))
        finally:
            reward.close()
        if result is None:  # another rank of a launched run: its share is scored, rank 0 does the rest
            return {}
        summary, rows = result
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "rm_bench.json").write_text(json.dumps(
            {"model": to_dict(reward_spec), **summary, "per_item": rows}, indent=1) + "\n")
        print_table(summary, self.config.reward.name, console)
        return {"overall": summary["overall"]["accuracy"], **{k: summary[k]["accuracy"] for k in LEVELS},
                "domains": {d: {k: b[k]["accuracy"] for k in (*LEVELS, "average")}
                            for d, b in summary["domains"].items()},
                "ci95": {k: summary[k]["ci95"] for k in (*LEVELS, "overall")}, "ci_resamples": summary["ci_resamples"],
                "ci_seed": summary["ci_seed"], "items": len(rows), "unscored": summary["unscored"],
                "incomplete": summary["incomplete"], "partial": summary["partial"],
                "exact_ties": summary["exact_ties"], "scoring": summary["scoring"]}


@hookimpl
def register_evaluators(register):
    register("rm-bench", RMBenchEvaluator,
             description="RM-Bench with any reward: hard/normal/easy style accuracy per domain and overall")
