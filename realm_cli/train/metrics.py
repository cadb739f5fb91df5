"""How a trained reward model is judged: pair metrics, the validation sets scored from the saved directory, the
live model against its reload, TRL's eval logs named per set, and the tables printed at the end of a run: every
accuracy with its 95% bootstrap interval, and the transfer table (``realm_cli.evaluate.transfer``, the one
``realm eval preference`` prints) with the length baselines beside each set."""

from __future__ import annotations

import time

from realm_cli.evaluate.stats import CI_RESAMPLES, CI_SEED, format_ci, pair_summary
from realm_cli.evaluate.transfer import seen_in_training, transfer_table, with_lengths
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


def pair_metrics(chosen: list[float], rejected: list[float], *, resamples: int = CI_RESAMPLES,
                 seed: int = CI_SEED) -> dict:
    """What ``realm eval preference`` reports for a set (``stats.pair_summary``: strict accuracy with its 95%
    bootstrap interval, ties, mean margin, score mean/std per side, ECE), less the reliability bins."""
    summary = pair_summary(chosen, rejected, resamples=resamples, seed=seed)
    summary.pop("reliability")
    return summary


def evaluate_sets(rm: rmlib.LoadedRM, validation: dict, batch_size: int, *, train: list | None = None,
                  resamples: int = CI_RESAMPLES, seed: int = CI_SEED, say=None) -> tuple[dict, dict]:
    """Metrics and raw scores per validation set, scored from the saved directory exactly as the bt reward does.
    ``say(line)`` is told when each set starts and ends (pairs, seconds, rate, accuracy): scoring a 135M model's
    sets takes minutes on a CPU, and a log must show where the run is.

    Each set's metrics carry the accuracy's 95% interval and the length baselines on the same pairs
    (``evaluate.transfer.with_lengths``); given the ``train`` records, also whether the set's source was trained on
    and how many of its pairs were (``evaluate.transfer.seen_in_training``)."""
    kw = {"resamples": resamples, "seed": seed}

    def summarise(records, chosen, rejected):
        out = with_lengths(pair_metrics(chosen, rejected, **kw), records, chosen, rejected, kw)
        return out | (seen_in_training(records, train) if train is not None else {})

    metrics, scores = {}, {}
    for name, records in validation.items():
        if not records:
            continue
        prompts = [r.prompt for r in records]
        if say:
            say(f"validation: scoring {name} ({len(records)} pairs)")
        started = time.perf_counter()
        s = rmlib.score(rm, prompts + prompts, [r.chosen for r in records] + [r.rejected for r in records],
                        batch_size=batch_size)
        took = time.perf_counter() - started
        chosen, rejected = s[: len(records)], s[len(records):]
        metrics[name] = summarise(records, chosen, rejected)
        if say:
            say(f"validation: {name} scored in {took:.1f} s ({len(records) / max(took, 1e-9):.1f} pairs/s), "
                f"accuracy {metrics[name]['accuracy']:.3f}")
        scores[name] = (chosen, rejected)
        sources = sorted({r.source for r in records})
        if len(sources) > 1:  # a held-out slice of a mixture: each source's share reported on its own too
            for source in sources:
                idx = [i for i, r in enumerate(records) if r.source == source]
                metrics[f"{name}/{source}"] = summarise([records[i] for i in idx], [chosen[i] for i in idx],
                                                        [rejected[i] for i in idx])
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
    """The validation table (every accuracy with its 95% interval), then the transfer table: the same accuracies
    beside the length baselines on the same pairs, and whether each set's source was trained on."""
    from rich.table import Table

    first = next(iter(metrics.values()))
    table = Table(title="reward model on its validation sets",
                  caption=f"intervals: 95% bootstrap over the pairs ({first['ci_resamples']} resamples, seed "
                          f"{first['ci_seed']}); a tie counts wrong")
    for col in ("set", "pairs", "accuracy [95% CI]", "mean margin", "chosen mean ± std", "rejected mean ± std",
                "ECE"):
        table.add_column(col, justify="right" if col != "set" else "left", overflow="fold")
    for name, m in metrics.items():
        table.add_row(name, str(m["pairs"]), format_ci(m["accuracy"], m["ci95"]), f"{m['mean_margin']:+.3f}",
                      f"{m['chosen_mean']:+.3f} ± {m['chosen_std']:.3f}",
                      f"{m['rejected_mean']:+.3f} ± {m['rejected_std']:.3f}", f"{m['ece']:.3f}")
    console.print(table)
    console.print(transfer_table(metrics, "", title="transfer: the trained RM vs length baselines"))
