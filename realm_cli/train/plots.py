"""The PNG a ``train-rm`` run leaves: loss and accuracy over training, and the score histograms per validation set."""

from __future__ import annotations

from pathlib import Path


def plot(log_history: list[dict], scores: dict, path: Path) -> None:
    """Loss and accuracy curves over training, and the chosen/rejected score histograms per validation set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in log_history if "loss" in h and "step" in h]
    panels = 2 + len(scores)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4))
    axes[0].plot([h["step"] for h in train], [h["loss"] for h in train], marker=".")
    axes[0].set(title="train loss", xlabel="step")
    axes[1].plot([h["step"] for h in train], [h.get("accuracy", float("nan")) for h in train], marker=".",
                 label="train")
    for key in sorted({k for h in log_history for k in h if k.startswith("eval_") and k.endswith("_accuracy")}):
        ev = [h for h in log_history if key in h]
        axes[1].plot([h["step"] for h in ev], [h[key] for h in ev], marker="o", label=key[5:-9] or "eval")
    axes[1].set(title="pair accuracy", xlabel="step", ylim=(0, 1))
    axes[1].legend(fontsize=7)
    for ax, (name, (chosen, rejected)) in zip(axes[2:], scores.items()):
        ax.hist(chosen, bins=30, alpha=0.6, label="chosen")
        ax.hist(rejected, bins=30, alpha=0.6, label="rejected")
        ax.set(title=f"scores: {name}", xlabel="reward")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
