"""Proof that a run aligned: held-out responses of the base and the aligned policy, their rewards, win-rates, KL,
and a PNG of reward and KL over training steps."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from realm_cli.evaluate.stats import format_ci, nanmean, win_rate


def per_prompt(values: list[float], prompt_index: list[int], n_prompts: int) -> list[float]:
    buckets: list[list[float]] = [[] for _ in range(n_prompts)]
    for v, i in zip(values, prompt_index):
        buckets[i].append(v)
    return [nanmean(b) for b in buckets]


def summarise(base: dict, aligned: dict, reward_names: list[str], kl: float, n_prompts: int, *,
              resamples: int = 1000, seed: int = 0) -> dict:
    """``base``/``aligned``: {"prompt_index": [...], "scores": {reward name: [...]}, "lengths": [...]}.
    Each reward's win-rate carries its 95% bootstrap interval over the prompts (``ci95``, ``ci_resamples``,
    ``ci_seed``)."""
    out = {"heldout_prompts": n_prompts, "heldout_kl_to_base": kl}
    for name in reward_names:
        b = per_prompt(base["scores"][name], base["prompt_index"], n_prompts)
        a = per_prompt(aligned["scores"][name], aligned["prompt_index"], n_prompts)
        out[name] = {"base_mean": nanmean(b), "aligned_mean": nanmean(a),
                     **win_rate(a, b, resamples=resamples, seed=seed)}
    out["base_length"] = nanmean(base["lengths"])
    out["aligned_length"] = nanmean(aligned["lengths"])
    return out


def write_responses(path: Path, prompts, base: dict, aligned: dict) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for side, rows in (("base", base), ("aligned", aligned)):
            for j, index in enumerate(rows["prompt_index"]):
                fh.write(json.dumps({"policy": side, "prompt_index": index, "prompt": prompts[index],
                                     "response": rows["texts"][j],
                                     "rewards": {k: v[j] for k, v in rows["scores"].items()}}) + "\n")


def print_summary(summary: dict, reward_names: list[str], console: Console) -> None:
    first = summary[reward_names[0]] if reward_names else {}
    table = Table(title=f"held-out: aligned vs base ({summary['heldout_prompts']} prompts, "
                        f"KL to base {summary['heldout_kl_to_base']:.3f} nats)",
                  caption=f"win-rate: ties count half; intervals: 95% bootstrap over the prompts "
                          f"({first.get('ci_resamples', 1000)} resamples, seed {first.get('ci_seed', 0)})")
    for col in ("reward", "base mean", "aligned mean", "win-rate [95% CI]", "W/T/L", "unscored"):
        table.add_column(col, justify="right" if col != "reward" else "left")
    for i, name in enumerate(reward_names):
        s = summary[name]
        label = f"{name} ({'training' if i == 0 else 'second'})"
        table.add_row(label, f"{s['base_mean']:.4f}", f"{s['aligned_mean']:.4f}",
                      format_ci(s["win_rate"], s.get("ci95"), digits=2),
                      f"{s['wins']}/{s['ties']}/{s['losses']}", str(s["unscored"]))
    console.print(table)


def plot_history(history: list[dict], path: Path) -> Path | None:
    """Reward and KL against the training step; None when there is nothing to plot."""
    points = [h for h in history if "reward" in h]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in points]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(steps, [h["reward"] for h in points], color="tab:blue", marker="o", label="mean reward")
    ax1.set_xlabel("step")
    ax1.set_ylabel("mean reward", color="tab:blue")
    kl_points = [(h["step"], h["kl"]) for h in points if h.get("kl") is not None and math.isfinite(h["kl"])]
    if kl_points:
        ax2 = ax1.twinx()
        ax2.plot(*zip(*kl_points), color="tab:red", marker="x", label="KL to reference")
        ax2.set_ylabel("KL to reference (nats)", color="tab:red")
    ax1.set_title("realm align: reward and KL over training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
