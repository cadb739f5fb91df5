"""How a trained reward model is judged: pair metrics, the validation sets scored from the saved directory, the
live model against its reload, TRL's eval logs named per set, and the table printed at the end of a run."""

from __future__ import annotations

from realm_cli.evaluate.stats import mean_std
from realm_cli.rewards import rm as rmlib


def name_eval_metrics(log_history: list[dict]) -> list[dict]:
    """TRL logs every validation set's accuracy/margin as plain ``eval_accuracy``; HF names only the loss
    (``eval_<set>_loss``). Give them the set's name (in place, so the plot can tell the sets apart)."""
    out = []
    for entry in log_history:
        name = next((k[5:-5] for k in entry if k.startswith("eval_") and k.endswith("_loss")), None)
        if name is None:
            continue
        for key in ("accuracy", "margin", "mean_reward", "min_reward", "max_reward"):
            if f"eval_{key}" in entry and name:
                entry[f"eval_{name}_{key}"] = entry.pop(f"eval_{key}")
        out.append(entry)
    return out


def pair_metrics(chosen: list[float], rejected: list[float]) -> dict:
    """Strict accuracy (a tie is wrong), mean margin, score mean/std per side."""
    n = len(chosen)
    c_mean, c_std = mean_std(chosen)
    r_mean, r_std = mean_std(rejected)
    return {"pairs": n, "accuracy": sum(c > r for c, r in zip(chosen, rejected)) / n if n else float("nan"),
            "mean_margin": sum(c - r for c, r in zip(chosen, rejected)) / n if n else float("nan"),
            "chosen_mean": c_mean, "chosen_std": c_std, "rejected_mean": r_mean, "rejected_std": r_std}


def evaluate_sets(rm: rmlib.LoadedRM, validation: dict, batch_size: int) -> tuple[dict, dict]:
    """Metrics and raw scores per validation set, scored from the saved directory exactly as the bt reward does."""
    metrics, scores = {}, {}
    for name, records in validation.items():
        if not records:
            continue
        prompts = [r.prompt for r in records]
        s = rmlib.score(rm, prompts + prompts, [r.chosen for r in records] + [r.rejected for r in records],
                        batch_size=batch_size)
        chosen, rejected = s[: len(records)], s[len(records):]
        metrics[name] = pair_metrics(chosen, rejected)
        scores[name] = (chosen, rejected)
        sources = sorted({r.source for r in records})
        if len(sources) > 1:  # a held-out slice of a mixture: each source's share reported on its own too
            for source in sources:
                idx = [i for i, r in enumerate(records) if r.source == source]
                metrics[f"{name}/{source}"] = pair_metrics([chosen[i] for i in idx], [rejected[i] for i in idx])
    return metrics, scores


def reload_difference(trainer, rm: rmlib.LoadedRM, splits, fmt: rmlib.RMFormat, n: int = 16) -> float:
    """Largest |score| difference between the model in memory and the saved directory reloaded, in fp32, on a few
    pairs: a LoRA RM that lost its score head (trl#1379) or a wrong pad id shows up here at once."""
    records = (next(iter(splits.validation.values()), None) or splits.train)[:n]
    seqs = [fmt.fit(r.prompt, r.chosen).ids for r in records]
    live = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)  # no autocast
    device = next(live.parameters()).device.type
    a = rmlib.score_ids(live, seqs, rm.tokenizer.pad_token_id, device=device, precision="fp32")
    b = rmlib.score_ids(rm.model, seqs, rm.tokenizer.pad_token_id, device=rm.device, precision="fp32")
    return max(abs(x - y) for x, y in zip(a, b))


def print_table(metrics: dict, console) -> None:
    from rich.table import Table

    table = Table(title="reward model on its validation sets")
    for col in ("set", "pairs", "accuracy", "mean margin", "chosen mean ± std", "rejected mean ± std"):
        table.add_column(col, justify="right" if col != "set" else "left")
    for name, m in metrics.items():
        table.add_row(name, str(m["pairs"]), f"{m['accuracy']:.3f}", f"{m['mean_margin']:+.3f}",
                      f"{m['chosen_mean']:+.3f} ± {m['chosen_std']:.3f}",
                      f"{m['rejected_mean']:+.3f} ± {m['rejected_std']:.3f}")
    console.print(table)
