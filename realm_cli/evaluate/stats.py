"""Preference-pair statistics of a reward: accuracy, margins, and how well sigmoid(margin) is calibrated.

A Bradley-Terry reward claims P(chosen preferred) = sigmoid(r_chosen - r_rejected). Read as a binary classifier
("chosen wins" when p > 0.5), its confidence is max(p, 1 - p) and it is right when the margin is positive; the
expected calibration error is the bin-weighted gap between confidence and accuracy over equal-width confidence
bins on [0.5, 1] (Guo et al. 2017). A tie (margin 0) is a wrong prediction at confidence 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def nanmean(values: Sequence[float]) -> float:
    """The mean of the finite values (NaN: unscored samples, left out); NaN when none is finite."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def win_rate(a: Sequence[float], b: Sequence[float]) -> dict:
    """P(a beats b) pair by pair, a tie counting half. Pairs where either side could not be scored (NaN) are left
    out and counted as ``unscored``; ``win_rate`` is NaN when no pair is left."""
    pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    wins = sum(x > y for x, y in pairs)
    ties = sum(x == y for x, y in pairs)
    rate = (wins + 0.5 * ties) / len(pairs) if pairs else math.nan
    return {"win_rate": rate, "pairs": len(pairs), "wins": wins, "ties": ties, "losses": len(pairs) - wins - ties,
            "unscored": len(a) - len(pairs)}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def reliability_bins(margins: Sequence[float], n_bins: int = 10) -> list[dict]:
    """Per confidence bin: its range, count, mean confidence and accuracy (None for an empty bin)."""
    width = 0.5 / n_bins
    bins = [{"low": 0.5 + i * width, "high": 0.5 + (i + 1) * width, "count": 0, "conf_sum": 0.0, "correct": 0}
            for i in range(n_bins)]
    for m in margins:
        p = sigmoid(m)
        conf = max(p, 1.0 - p)
        index = min(int((conf - 0.5) / width), n_bins - 1)
        b = bins[index]
        b["count"] += 1
        b["conf_sum"] += conf
        b["correct"] += 1 if m > 0 else 0
    out = []
    for b in bins:
        n = b["count"]
        out.append({"low": b["low"], "high": b["high"], "count": n,
                    "confidence": b["conf_sum"] / n if n else None, "accuracy": b["correct"] / n if n else None})
    return out


def expected_calibration_error(margins: Sequence[float], n_bins: int = 10) -> float:
    total = len(margins)
    if total == 0:
        return float("nan")
    return sum(b["count"] / total * abs(b["accuracy"] - b["confidence"])
               for b in reliability_bins(margins, n_bins) if b["count"])


def pair_summary(chosen: Sequence[float], rejected: Sequence[float], n_bins: int = 10) -> dict:
    """Everything `realm eval preference` reports for one set of pairs; nan-scored pairs are counted, not used."""
    if len(chosen) != len(rejected):
        raise ValueError(f"{len(chosen)} chosen scores but {len(rejected)} rejected scores")
    kept = [(c, r) for c, r in zip(chosen, rejected) if not (math.isnan(c) or math.isnan(r))]
    margins = [c - r for c, r in kept]
    n = len(kept)
    c_mean, c_std = mean_std([c for c, _ in kept])
    r_mean, r_std = mean_std([r for _, r in kept])
    m_mean, m_std = mean_std(margins)
    return {
        "pairs": n,
        "unscored": len(chosen) - n,
        "accuracy": sum(1 for m in margins if m > 0) / n if n else float("nan"),
        "ties": sum(1 for m in margins if m == 0),
        "mean_margin": m_mean,
        "margin_std": m_std,
        "chosen_mean": c_mean,
        "chosen_std": c_std,
        "rejected_mean": r_mean,
        "rejected_std": r_std,
        "ece": expected_calibration_error(margins, n_bins),
        "mean_confidence": sum(max(sigmoid(m), 1 - sigmoid(m)) for m in margins) / n if n else float("nan"),
        "reliability": reliability_bins(margins, n_bins),
    }
