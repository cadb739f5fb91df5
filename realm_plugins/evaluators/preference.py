"""Preference accuracy of any reward on named validation sets: accuracy with its 95% bootstrap interval, margins,
score distributions, the calibration of sigmoid(margin) (ECE and a reliability plot), and the length baselines on
the same pairs ("longer wins", "shorter wins"), side by side per set in a transfer table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.errors import RealmError
from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Evaluator


@dataclass
class PreferenceEvalConfig:
    reward: PluginSpec = plugin_field("reward", default_factory=lambda: PluginSpec("embedding"))
    # set name -> its datasets (mixed, like a recipe's data.validation block)
    sets: dict[str, list[PluginSpec]] = plugin_field(
        "dataset", default_factory=lambda: {"hh-helpful": [PluginSpec("hh-rlhf")]})
    batch_size: int = 64
    bins: int = 10  # reliability bins over confidence [0.5, 1]
    plot: bool = True
    ci_resamples: int = 1000  # bootstrap resamples of every 95% interval
    ci_seed: int = 0

    def __post_init__(self):
        if not self.sets:
            raise ValueError("sets: at least one named validation set is required")
        if self.bins < 1:
            raise ValueError(f"bins: expected a positive integer, got {self.bins}")
        if self.ci_resamples < 1:
            raise ValueError(f"ci_resamples: expected a positive integer, got {self.ci_resamples}")


def score_pairs(reward, records: list, batch_size: int, progress, label: str) -> tuple[list[float], list[float]]:
    task = progress.add_task(f"scoring {label}", total=len(records))
    chosen, rejected = [], []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        prompts = [r.prompt for r in chunk]
        # chosen and rejected in one call: batch-level rewards (e.g. per-prompt normalisation) see both sides
        values = reward.score(prompts + prompts, [r.chosen for r in chunk] + [r.rejected for r in chunk])
        chosen += [float(v) for v in values[: len(chunk)]]
        rejected += [float(v) for v in values[len(chunk):]]
        progress.advance(task, len(chunk))
    return chosen, rejected


def plot(results: dict[str, dict], scores: dict[str, tuple], path: Path, reward_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from realm_cli.evaluate.stats import format_ci

    names = list(results)
    fig, axes = plt.subplots(2, len(names), figsize=(4.5 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        chosen, rejected = scores[name]
        hist = axes[0][col]
        hist.hist([c for c in chosen if c == c], bins=30, alpha=0.6, label="chosen")
        hist.hist([r for r in rejected if r == r], bins=30, alpha=0.6, label="rejected")
        hist.set_title(f"{name}: acc {format_ci(results[name]['accuracy'], results[name]['ci95'])}")
        hist.set_xlabel("score")
        hist.legend()
        rel = axes[1][col]
        bins = [b for b in results[name]["reliability"] if b["count"]]
        rel.plot([0.5, 1], [0.5, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
        rel.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", label="reward")
        rel.set_xlim(0.5, 1)
        rel.set_ylim(0, 1)
        rel.set_xlabel("confidence max(p, 1-p), p = sigmoid(margin)")
        rel.set_ylabel("accuracy")
        rel.set_title(f"reliability: ECE {results[name]['ece']:.3f}")
        rel.legend()
    fig.suptitle(f"preference evaluation — reward {reward_name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(results: dict[str, dict], reward_name: str, console) -> None:
    from rich.table import Table

    from realm_cli.evaluate.stats import format_ci

    first = next(iter(results.values()))
    table = Table(title=f"preference pairs — reward {reward_name}",
                  caption=f"intervals: 95% bootstrap over the pairs ({first['ci_resamples']} resamples, seed "
                          f"{first['ci_seed']}); a tie counts wrong")
    cols = ("set", "pairs", "unscored", "accuracy [95% CI]", "ties", "mean margin", "chosen μ±σ", "rejected μ±σ",
            "ECE")
    for col in cols:
        table.add_column(col, justify="left" if col == "set" else "right",
                         overflow="fold")
    for name, r in results.items():
        table.add_row(name, str(r["pairs"]), str(r["unscored"]), format_ci(r["accuracy"], r["ci95"]), str(r["ties"]),
                      f"{r['mean_margin']:.4f}", f"{r['chosen_mean']:.3f}±{r['chosen_std']:.3f}",
                      f"{r['rejected_mean']:.3f}±{r['rejected_std']:.3f}", f"{r['ece']:.4f}")
    console.print(table)


def transfer_table(results: dict[str, dict], reward_name: str):
    """Every named set at a glance: the reward's accuracy beside what length alone gets on the same pairs, and its
    margin over the better length baseline (paired bootstrap) — a reward that only learned "longer is better"
    shows up here on the sets it was not trained on."""
    from rich.table import Table

    from realm_cli.evaluate.stats import beats, format_ci

    table = Table(title=f"transfer: accuracy vs length baselines — reward {reward_name}",
                  caption="lengths in characters, equal lengths count wrong for both baselines; margin = RM minus "
                          "the better baseline, 95% paired bootstrap; beats it? yes/no when the interval excludes 0")
    for col in ("set", "RM [95% CI]", "longer wins", "shorter wins", "RM | longer rejected", "margin [95% CI]",
                "beats it?"):
        table.add_column(col, justify="left" if col == "set" else "right",
                         overflow="fold")
    for name, r in results.items():
        length = r["length"]
        where, margin = length["rm_where_longer_rejected"], length["margin_over_best_baseline"]
        table.add_row(name, format_ci(r["accuracy"], r["ci95"]),
                      format_ci(length["longer_wins"]["accuracy"], length["longer_wins"]["ci95"]),
                      format_ci(length["shorter_wins"]["accuracy"], length["shorter_wins"]["ci95"]),
                      f"{format_ci(where['accuracy'])} (n={where['n']})", format_ci(margin["diff"], margin["ci95"]),
                      beats(margin))
    return table


def with_lengths(summary: dict, records: list, chosen: list[float], rejected: list[float], kw: dict) -> dict:
    """``summary`` plus the length baselines over its scored pairs (the same pairs its accuracy counts)."""
    import math

    from realm_cli.evaluate.stats import length_baselines

    kept = [(r, c > j) for r, c, j in zip(records, chosen, rejected) if not (math.isnan(c) or math.isnan(j))]
    summary["length"] = length_baselines([len(r.chosen) for r, _ in kept], [len(r.rejected) for r, _ in kept],
                                         [ok for _, ok in kept], **kw)
    return summary


class PreferenceEvaluator(Evaluator):
    Config = PreferenceEvalConfig

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from realm_cli.evaluate.reward_bench import scoring_record
        from realm_cli.evaluate.stats import pair_summary
        from realm_cli.data.load import DataConfig, load
        from realm_cli.rewards.build import build_reward

        console = Console(stderr=True)
        splits = load(DataConfig(validation=self.config.sets))
        empty = [n for n, recs in splits.validation.items() if not recs]
        if empty:
            raise RealmError(f"preference: validation set(s) {', '.join(empty)} have no pairs")
        reward = build_reward(self.config.reward)
        results, scores = {}, {}
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console) as progress:
                kw = {"resamples": self.config.ci_resamples, "seed": self.config.ci_seed}
                for name, records in splits.validation.items():
                    scores[name] = score_pairs(reward, records, self.config.batch_size, progress, name)
                    results[name] = with_lengths(pair_summary(*scores[name], n_bins=self.config.bins, **kw),
                                                 records, *scores[name], kw)
            # how the reward scored (max_length, precision/dtype, truncation), as the RewardBench files record it
            scoring = scoring_record(reward, [(r.prompt, text) for recs in splits.validation.values()
                                              for r in recs for text in (r.chosen, r.rejected)])
        finally:
            reward.close()
        output_dir.mkdir(parents=True, exist_ok=True)
        # per pair: its id (realm report pairs two runs by it), both scores, and whether the chosen one won (null:
        # not scored)
        per_pair = {name: [{"id": r.id, "chosen": c, "rejected": j, "correct": None if c != c or j != j else c > j}
                           for r, c, j in zip(splits.validation[name], *scores[name])] for name in results}
        (output_dir / "preference.json").write_text(json.dumps(
            {"reward": self.config.reward.name, "scoring": scoring, "sets": results, "data": splits.report.to_json(),
             "per_pair": per_pair}, indent=1) + "\n")
        if self.config.plot:
            plot(results, scores, output_dir / "preference.png", self.config.reward.name)
        print_table(results, self.config.reward.name, console)
        console.print(transfer_table(results, self.config.reward.name))
        return {name: {k: v for k, v in r.items() if k != "reliability"} for name, r in results.items()}


@hookimpl
def register_evaluators(register):
    register("preference", PreferenceEvaluator,
             description="Accuracy, margins and sigmoid(margin) calibration (ECE) of any reward on preference sets")
