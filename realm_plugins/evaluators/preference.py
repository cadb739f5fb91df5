"""Preference accuracy of any reward on named validation sets: accuracy, margins, score distributions, and the
calibration of sigmoid(margin) (ECE and a reliability plot)."""

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

    def __post_init__(self):
        if not self.sets:
            raise ValueError("sets: at least one named validation set is required")
        if self.bins < 1:
            raise ValueError(f"bins: expected a positive integer, got {self.bins}")


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

    names = list(results)
    fig, axes = plt.subplots(2, len(names), figsize=(4.5 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        chosen, rejected = scores[name]
        hist = axes[0][col]
        hist.hist([c for c in chosen if c == c], bins=30, alpha=0.6, label="chosen")
        hist.hist([r for r in rejected if r == r], bins=30, alpha=0.6, label="rejected")
        hist.set_title(f"{name}: acc {results[name]['accuracy']:.3f}")
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

    table = Table(title=f"preference pairs — reward {reward_name}")
    cols = ("set", "pairs", "unscored", "accuracy", "ties", "mean margin", "chosen μ±σ", "rejected μ±σ", "ECE")
    for col in cols:
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, r in results.items():
        table.add_row(name, str(r["pairs"]), str(r["unscored"]), f"{r['accuracy']:.4f}", str(r["ties"]),
                      f"{r['mean_margin']:.4f}", f"{r['chosen_mean']:.3f}±{r['chosen_std']:.3f}",
                      f"{r['rejected_mean']:.3f}±{r['rejected_std']:.3f}", f"{r['ece']:.4f}")
    console.print(table)


class PreferenceEvaluator(Evaluator):
    Config = PreferenceEvalConfig

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
                for name, records in splits.validation.items():
                    scores[name] = score_pairs(reward, records, self.config.batch_size, progress, name)
                    results[name] = pair_summary(*scores[name], n_bins=self.config.bins)
        finally:
            reward.close()
        output_dir.mkdir(parents=True, exist_ok=True)
        per_pair = {name: [{"id": r.id, "chosen": c, "rejected": j}
                           for r, c, j in zip(splits.validation[name], *scores[name])] for name in results}
        (output_dir / "preference.json").write_text(json.dumps(
            {"reward": self.config.reward.name, "sets": results, "data": splits.report.to_json(),
             "per_pair": per_pair}, indent=1) + "\n")
        if self.config.plot:
            plot(results, scores, output_dir / "preference.png", self.config.reward.name)
        print_table(results, self.config.reward.name, console)
        return {name: {k: v for k, v in r.items() if k != "reliability"} for name, r in results.items()}


@hookimpl
def register_evaluators(register):
    register("preference", PreferenceEvaluator,
             description="Accuracy, margins and sigmoid(margin) calibration (ECE) of any reward on preference sets")
