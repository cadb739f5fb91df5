"""The transfer report: a reward's accuracy on every named set of pairs beside what response length alone gets on
the same pairs, and whether the set's source was trained on — so "better than longer-wins on sets it was not
trained on" reads off one table. ``realm eval preference`` and ``realm train-rm`` (its validation sets) both print
it; ``benchmarks/rm_transfer.py`` lays the same numbers out as a train-source x eval-set matrix.

``with_lengths`` adds the length baselines (``stats.length_baselines``) over exactly the pairs an accuracy counts;
``seen_in_training`` says, per set, whether its source (dataset plus subset) was in the train mixture and how many
of its pairs were trained on; ``transfer_table`` renders the lot.
"""

from __future__ import annotations

import json
import math

def with_lengths(summary: dict, records: list, chosen: list[float], rejected: list[float], kw: dict) -> dict:
    """``summary`` plus the length baselines over its scored pairs (the same pairs its accuracy counts)."""
    from realm_cli.evaluate.stats import length_baselines

    kept = [(r, c > j) for r, c, j in zip(records, chosen, rejected) if not (math.isnan(c) or math.isnan(j))]
    summary["length"] = length_baselines([len(r.chosen) for r, _ in kept], [len(r.rejected) for r, _ in kept],
                                         [ok for _, ok in kept], **kw)
    return summary


def source_key(record) -> str:
    """What "the same source" means for transfer: the dataset, its subset, and the file its id names
    (``file:line``), so HH helpful-base and helpful-rejection-sampled (both ``hh-rlhf``) or two ``preference`` files
    are different sources. Files of the same name count as one source: the error goes the safe way (a set called
    trained on that was not, never the reverse)."""
    parts = [record.source]
    subset = (record.meta or {}).get("subset")
    if subset:
        parts.append(str(subset))
    file, sep, line = str(record.id).rpartition(":")
    if sep and line.isdigit():
        parts.append(file)
    return "/".join(parts)


def seen_in_training(records: list, train: list) -> dict:
    """``{"sources": [...], "source_trained": bool, "train_overlap": n}``: the set's sources, whether any of them is
    in the train mixture, and how many of its pairs (same prompt, chosen and rejected) were trained on — a named
    validation set drawn from a file the mixture also trains on reports its overlap here instead of passing for
    transfer."""
    sources = sorted({source_key(r) for r in records})
    trained = {source_key(r) for r in train}
    texts = {_pair_text(r) for r in train}
    return {"sources": sources, "source_trained": bool(trained & set(sources)),
            "train_overlap": sum(1 for r in records if _pair_text(r) in texts)}


def _pair_text(record) -> tuple:
    return json.dumps(record.prompt, sort_keys=True), record.chosen, record.rejected


def _seen_word(result: dict) -> str:
    if "source_trained" not in result:
        return "?"
    if result["train_overlap"]:
        return f"{result['train_overlap']} pairs trained on"
    return "source" if result["source_trained"] else "no"


def transfer_table(results: dict[str, dict], reward_name: str, *, title: str | None = None):
    """Every named set at a glance: the reward's accuracy beside what length alone gets on the same pairs, and its
    margin over the better length baseline (paired bootstrap) — a reward that only learned "longer is better"
    shows up here on the sets it was not trained on. A ``trained on?`` column appears when the results say
    (``seen_in_training``): ``no`` (a set it never saw), ``source`` (same source, disjoint pairs), or how many of
    its pairs were in training."""
    from rich.table import Table

    from realm_cli.evaluate.stats import beats, format_ci

    seen = any("source_trained" in r for r in results.values())
    table = Table(title=title or f"transfer: accuracy vs length baselines — reward {reward_name}",
                  caption="lengths in characters, equal lengths count wrong for both baselines; margin = RM minus "
                          "the better baseline, 95% paired bootstrap; beats it? yes/no when the interval excludes 0")
    cols = ("set",) + (("trained on?",) if seen else ()) + ("RM [95% CI]", "longer wins", "shorter wins",
                                                            "RM | longer rejected", "margin [95% CI]", "beats it?")
    for col in cols:
        table.add_column(col, justify="left" if col in ("set", "trained on?") else "right", overflow="fold")
    for name, r in results.items():
        length = r["length"]
        where, margin = length["rm_where_longer_rejected"], length["margin_over_best_baseline"]
        table.add_row(name, *((_seen_word(r),) if seen else ()), format_ci(r["accuracy"], r["ci95"]),
                      format_ci(length["longer_wins"]["accuracy"], length["longer_wins"]["ci95"]),
                      format_ci(length["shorter_wins"]["accuracy"], length["shorter_wins"]["ci95"]),
                      f"{format_ci(where['accuracy'])} (n={where['n']})", format_ci(margin["diff"], margin["ci95"]),
                      beats(margin))
    return table
