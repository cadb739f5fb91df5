"""Held-out reward win-rate: greedy answers of several policies to the same prompts, scored by one reward;
each policy's mean reward and its win-rate over the baseline (ties count half) with a 95% bootstrap interval
(the prompts resampled)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.errors import RealmError
from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Evaluator


@dataclass
class WinRateConfig:
    baseline: str = "smollm2-135m-instruct"  # alias, path or hub id of a chat policy
    policies: list[str] = field(default_factory=list)  # compared with the baseline
    reward: PluginSpec = plugin_field("reward", default_factory=lambda: PluginSpec("embedding"))
    # harmless-base by default: the offline align recipes draw their prompts from helpful-base
    prompts: PluginSpec = plugin_field("dataset", default_factory=lambda: PluginSpec("hh-rlhf", {
        "subset": "harmless-base", "limit": 32}))
    max_new_tokens: int = 64
    max_prompt_tokens: int = 256
    batch_size: int = 16
    ci_resamples: int = 1000  # bootstrap resamples of the win-rate's 95% interval
    ci_seed: int = 0

    def __post_init__(self):
        if not self.policies:
            raise ValueError("policies: at least one policy to compare with the baseline is required")
        if self.ci_resamples < 1:
            raise ValueError(f"ci_resamples: expected a positive integer, got {self.ci_resamples}")


def generate(name: str, prompts: list, config: WinRateConfig) -> list[str]:
    from realm_cli import models
    from realm_cli.align import policy
    from realm_cli.align import sampling as generation
    from realm_cli.recipes.recipe import ModelConfig

    cfg = ModelConfig(name=name)
    tokenizer = policy.load_tokenizer(cfg)
    model = policy.load_model(cfg, tokenizer)
    settings = generation.Sampling(max_new_tokens=config.max_new_tokens, max_prompt_tokens=config.max_prompt_tokens,
                                   batch_size=config.batch_size)
    with models.autocast(policy.device()):
        return generation.sample(model, tokenizer, prompts, settings=settings, greedy=True).texts


class WinRateEvaluator(Evaluator):
    Config = WinRateConfig

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from rich.console import Console
        from rich.table import Table

        from realm_cli.evaluate.stats import format_ci, mean_std, win_rate
        from realm_cli.data.load import load_source
        from realm_cli.rewards.build import build_reward

        console = Console(stderr=True)
        records = load_source(self.config.prompts).records
        if not records:
            raise RealmError(f"win-rate: dataset {self.config.prompts.name} gave no prompts")
        prompts = [r.prompt for r in records]
        names = [self.config.baseline, *self.config.policies]
        answers = {}
        for name in names:
            with console.status(f"generating {len(prompts)} answers with {name}"):
                answers[name] = generate(name, prompts, self.config)
        reward = build_reward(self.config.reward)
        try:
            with console.status(f"scoring with {self.config.reward.name}"):
                scores = {name: [float(s) for s in reward.score(prompts, answers[name])] for name in names}
        finally:
            reward.close()
        metrics = {"reward": self.config.reward.name, "prompts": len(prompts), "baseline": self.config.baseline}
        table = Table(title=f"held-out win-rate under reward {self.config.reward.name!r} ({len(prompts)} prompts)",
                      caption=f"ties count half; intervals: 95% bootstrap over the prompts "
                              f"({self.config.ci_resamples} resamples, seed {self.config.ci_seed})")
        for col in ("policy", "mean reward", "std", f"win-rate vs {self.config.baseline} [95% CI]", "pairs"):
            table.add_column(col, justify="left" if col == "policy" else "right")
        for name in names:
            mean, std = mean_std([s for s in scores[name] if not math.isnan(s)])
            row = {"mean_reward": mean, "reward_std": std, "unscored": sum(math.isnan(s) for s in scores[name])}
            if name != self.config.baseline:
                wr = win_rate(scores[name], scores[self.config.baseline], resamples=self.config.ci_resamples,
                              seed=self.config.ci_seed)
                row.update({k: wr[k] for k in ("win_rate", "pairs", "ci95", "ci_resamples", "ci_seed")})
            metrics[name] = row
            table.add_row(name, f"{mean:.4f}", f"{std:.4f}",
                          format_ci(row["win_rate"], row["ci95"]) if "win_rate" in row else "—",
                          str(row.get("pairs", "")))
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "win_rate.json").write_text(json.dumps(
            {**metrics, "per_prompt": [{"id": r.id, "prompt": r.prompt,
                                        **{n: {"answer": answers[n][i], "reward": scores[n][i]} for n in names}}
                                       for i, r in enumerate(records)]}, indent=1) + "\n")
        console.print(table)
        return metrics


@hookimpl
def register_evaluators(register):
    register("win-rate", WinRateEvaluator,
             description="Held-out reward win-rate of policies over a baseline (greedy answers, one reward)")
