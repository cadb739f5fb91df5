"""The PNG a ``train-rm`` run leaves: loss and accuracy over training, the score histograms per validation set, and,
given the validation metrics, the transfer panel: each set's accuracy with its 95% interval beside the length
baselines ("longer wins", "shorter wins") on the same pairs."""

from __future__ import annotations

from pathlib import Path


def plot(log_history: list[dict], scores: dict, path: Path, metrics: dict | None = None) -> None:
    """Loss and accuracy curves over training, the chosen/rejected score histograms per validation set (titled with
    the set's accuracy and interval when ``metrics`` — ``evaluate_sets``' first result — is given), and the transfer
    panel from ``metrics``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from realm_cli.evaluate.stats import format_ci

    metrics = {name: m for name, m in (metrics or {}).items() if "length" in m}
    train = [h for h in log_history if "loss" in h and "step" in h]
    panels = 2 + len(scores) + (1 if metrics else 0)
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
        title = f"scores: {name}"
        if name in metrics:
            title += f"\nacc {format_ci(metrics[name]['accuracy'], metrics[name]['ci95'], digits=2)}"
        ax.set(title=title, xlabel="reward")
        ax.legend(fontsize=7)
    if metrics:
        transfer_panel(axes[-1], metrics)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def transfer_panel(ax, metrics: dict) -> None:
    """Per set: the RM's accuracy and both length baselines as bars with their 95% intervals, chance dashed."""
    names = list(metrics)
    series = [("RM", lambda m: (m["accuracy"], m["ci95"])),
              ("longer wins", lambda m: (m["length"]["longer_wins"]["accuracy"], m["length"]["longer_wins"]["ci95"])),
              ("shorter wins", lambda m: (m["length"]["shorter_wins"]["accuracy"],
                                          m["length"]["shorter_wins"]["ci95"]))]
    width = 0.8 / len(series)
    for k, (label, get) in enumerate(series):
        values = [get(metrics[n]) for n in names]
        xs = [i + (k - 1) * width for i in range(len(names))]
        heights = [v for v, _ in values]
        errors = [[v - ci[0] for v, ci in values], [ci[1] - v for v, ci in values]]
        ax.bar(xs, heights, width, yerr=errors, capsize=2, label=label)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    ax.set(title="transfer: RM vs length baselines (95% CI)", ylim=(0, 1), ylabel="accuracy")
    ax.legend(fontsize=7)
