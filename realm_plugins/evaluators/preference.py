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
from realm_cli.evaluate.transfer import transfer_table, with_lengths


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


def score_pairs(reward, records: list, batch_size: int, progress, label: str,
                where) -> tuple[list[float], list[float]] | None:
    """Chosen and rejected scores of every pair, shared out over the processes of a launched run
    (realm_cli.evaluate.shards, ``where``: a Sharding); None on a rank other than the main one."""
    from realm_cli.evaluate.shards import score_units

    # a pair's two sides in one reward call: batch-level rewards (e.g. per-prompt normalisation) see both
    scores = score_units(reward, [[(r.prompt, r.chosen), (r.prompt, r.rejected)] for r in records], batch_size,
                         where, progress, label)
    if scores is None:
        return None
    return [c for c, _ in scores], [j for _, j in scores]


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


class PreferenceEvaluator(Evaluator):
    Config = PreferenceEvalConfig

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from realm_cli import distributed
        from realm_cli.evaluate.reward_bench import scoring_record
        from realm_cli.evaluate.shards import sharding
        from realm_cli.evaluate.stats import pair_summary
        from realm_cli.data.load import DataConfig, load
        from realm_cli.rewards.build import build_reward
        from realm_cli.rewards.shards import bind_device

        console = Console(stderr=True)
        splits = load(DataConfig(validation=self.config.sets))
        empty = [n for n, recs in splits.validation.items() if not recs]
        if empty:
            raise RealmError(f"preference: validation set(s) {', '.join(empty)} have no pairs")
        main = distributed.is_main_process()
        bind_device()
        reward = build_reward(self.config.reward)
        results, scores = {}, {}
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console, disable=not main) as progress:
                kw = {"resamples": self.config.ci_resamples, "seed": self.config.ci_seed}
                for k, (name, records) in enumerate(splits.validation.items()):
                    where = sharding(output_dir, f"preference-{k}-{name}", self.config.reward)
                    scores[name] = score_pairs(reward, records, self.config.batch_size, progress, name, where)
                    if main:
                        results[name] = with_lengths(pair_summary(*scores[name], n_bins=self.config.bins, **kw),
                                                     records, *scores[name], kw)
            if not main:  # another rank of a launched run: its share of every set is scored, rank 0 does the rest
                return {}
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
