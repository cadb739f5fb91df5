"""Preference-pair statistics of a reward: accuracy, margins, and how well sigmoid(margin) is calibrated.

A Bradley-Terry reward claims P(chosen preferred) = sigmoid(r_chosen - r_rejected). Read as a binary classifier
("chosen wins" when p > 0.5), its confidence is max(p, 1 - p) and it is right when the margin is positive; the
expected calibration error is the bin-weighted gap between confidence and accuracy over equal-width confidence
bins on [0.5, 1] (Guo et al. 2017). A tie (margin 0) is a wrong prediction at confidence 0.5.

Uncertainty: ``bootstrap_ci`` (percentile bootstrap, seeded, stated resamples; items or strata resampled) gives
every accuracy and win-rate its 95% interval; ``accuracy_summary`` is the accuracy-plus-interval record any table
of pair accuracies uses. Two runs on the same items: ``mcnemar`` (pairwise correctness) and ``paired_bootstrap``
(means). ``length_baselines``: what "the longer response wins" and "the shorter wins" get right on the same pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def nanmean(values: Sequence[float]) -> float:
    """The mean of the finite values (NaN: unscored samples, left out); NaN when none is finite."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def win_rate(a: Sequence[float], b: Sequence[float], *, resamples: int = 1000, seed: int = 0) -> dict:
    """P(a beats b) pair by pair, a tie counting half, with its 95% bootstrap interval (``ci95``: the pairs
    resampled, each worth 1, 0.5 or 0). Pairs where either side could not be scored (NaN) are left out and counted
    as ``unscored``; ``win_rate`` is NaN when no pair is left."""
    pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    wins = sum(x > y for x, y in pairs)
    ties = sum(x == y for x, y in pairs)
    rate = (wins + 0.5 * ties) / len(pairs) if pairs else math.nan
    points = [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in pairs]
    return {"win_rate": rate, "pairs": len(pairs), "wins": wins, "ties": ties, "losses": len(pairs) - wins - ties,
            "unscored": len(a) - len(pairs), **ci_fields(points, resamples=resamples, seed=seed)}


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


def pair_summary(chosen: Sequence[float], rejected: Sequence[float], n_bins: int = 10, *, resamples: int = 1000,
                 seed: int = 0) -> dict:
    """Everything `realm eval preference` reports for one set of pairs; nan-scored pairs are counted, not used.
    ``ci95``: the accuracy's 95% bootstrap interval, the pairs resampled."""
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
        **ci_fields([m > 0 for m in margins], resamples=resamples, seed=seed),
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


# --- confidence intervals and paired tests ------------------------------------------------------------------------
# Every accuracy realm prints carries a 95% percentile-bootstrap interval: CI_RESAMPLES resamples drawn with numpy's
# default_rng(CI_SEED), so the same scores always give the same interval. JSON carries {"ci95": [low, high],
# "ci_resamples": 1000, "ci_seed": 0} beside the value; tables print "0.634 [0.590, 0.677]".
CI_RESAMPLES = 1000
CI_SEED = 0
CI_LEVEL = 0.95
MCNEMAR_EXACT_BELOW = 25  # discordant pairs under this: exact binomial test; else chi-square with continuity
ALPHA = 0.05


def _mean(values) -> float:
    """Mean of a list or a numpy array (a bootstrap statistic gets numpy arrays for numeric strata)."""
    return float(values.mean()) if hasattr(values, "mean") else sum(values) / len(values)


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) for v in values)  # bools count as 1/0


def bootstrap_distribution(values, statistic=None, *, resamples: int = CI_RESAMPLES, seed: int = CI_SEED) -> list:
    """The statistic over ``resamples`` bootstrap resamples (see ``bootstrap_ci`` for what is resampled)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if isinstance(values, Mapping):
        strata = {k: list(v) for k, v in values.items() if len(v)}
        arrays = {k: np.asarray(v, dtype=float) if _numeric(v) else None for k, v in strata.items()}
        if statistic is None:
            def statistic(drawn):
                total = sum(float(np.sum(v)) for v in drawn.values())
                return total / sum(len(v) for v in drawn.values())
        out = []
        for _ in range(resamples):
            drawn = {}
            for k, v in strata.items():
                idx = rng.integers(0, len(v), len(v))
                drawn[k] = arrays[k][idx] if arrays[k] is not None else [v[i] for i in idx]
            out.append(statistic(drawn))
        return out
    values = list(values)
    n = len(values)
    if not n:
        return []
    if statistic is None:  # the mean, vectorised in chunks of at most ~2M drawn indices
        arr = np.asarray(values, dtype=float)
        out, chunk = [], max(1, 2_000_000 // n)
        for start in range(0, resamples, chunk):
            idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
            out.extend(arr[idx].mean(axis=1).tolist())
        return out
    array = np.asarray(values, dtype=float) if _numeric(values) else None
    return [statistic(array[idx] if array is not None else [values[i] for i in idx])
            for idx in (rng.integers(0, n, n) for _ in range(resamples))]


def bootstrap_ci(values, statistic=None, *, resamples: int = CI_RESAMPLES, seed: int = CI_SEED,
                 level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile-bootstrap interval ``(low, high)`` of a statistic, ``level`` (0.95) two-sided.

    What is resampled:
    - ``values`` a sequence (per-item values: 1/0 correctness of each pair, a best-of-n item score, a per-prompt
      win 1/0.5/0): the items, with replacement, ``len(values)`` per resample; the statistic is their mean unless
      ``statistic`` (a function of the resampled list) says otherwise;
    - ``values`` a mapping stratum -> items (RewardBench subsets, RM-Bench domains): each stratum on its own, its
      size kept (a stratified bootstrap, so a section or overall score keeps its structure: every subset stays in,
      at its own size, and its weight stays the official one); ``statistic`` gets ``{stratum: resampled items}``
      (numeric items come as a numpy array) and defaults to the pooled mean.
    ``resamples`` draws from numpy's ``default_rng(seed)``; the bounds are the (1-level)/2 and (1+level)/2
    percentiles (linear interpolation) of the statistic over the resamples, resamples whose statistic is None or NaN
    left out. No items: ``(nan, nan)``.
    """
    import numpy as np

    dist = [float(v) for v in bootstrap_distribution(values, statistic, resamples=resamples, seed=seed)
            if v is not None and not math.isnan(v)]
    if not dist:
        return math.nan, math.nan
    low, high = np.percentile(dist, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def ci_fields(values, statistic=None, *, resamples: int = CI_RESAMPLES, seed: int = CI_SEED) -> dict:
    """``{"ci95": [low, high], "ci_resamples": R, "ci_seed": S}`` for JSON, beside the value it qualifies."""
    low, high = bootstrap_ci(values, statistic, resamples=resamples, seed=seed)
    return {"ci95": [low, high], "ci_resamples": resamples, "ci_seed": seed}


def accuracy_summary(correct: Sequence[bool | None], *, resamples: int = CI_RESAMPLES, seed: int = CI_SEED) -> dict:
    """Pairwise accuracy with its 95% bootstrap interval (pairs resampled), for any table of pair accuracies.

    ``correct``: one entry per pair, True when the chosen response strictly won (a tie is False); None for a pair
    that could not be scored, left out and counted. Returns ``{"accuracy", "n", "unscored", "ci95": [low, high],
    "ci_resamples", "ci_seed"}`` (``accuracy`` and the bounds NaN when no pair is scored)."""
    kept = [1.0 if c else 0.0 for c in correct if c is not None]
    n = len(kept)
    return {"accuracy": sum(kept) / n if n else math.nan, "n": n, "unscored": len(correct) - n,
            **ci_fields(kept, resamples=resamples, seed=seed)}


def format_ci(value: float | None, ci: Sequence[float] | None = None, digits: int = 3) -> str:
    """``0.634 [0.590, 0.677]``; ``n/a`` for a missing value, the value alone without an interval."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.{digits}f}"
    if ci is None or any(b is None or math.isnan(b) for b in ci):
        return text
    return f"{text} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, resamples: int = CI_RESAMPLES,
                     seed: int = CI_SEED) -> dict:
    """Paired bootstrap of ``mean(a) - mean(b)`` over matched items (item i of ``a`` is item i of ``b``).

    The items are resampled (both values of an item travel together), the difference of means recomputed; the
    interval is the percentile one of ``bootstrap_ci`` and the two-sided p-value is
    ``min(1, 2 * min(share of resampled differences <= 0, share >= 0))``, so p < 0.05 exactly when 0 lies outside
    the 95% percentile interval (up to interpolation). Items where either value is NaN are left out."""
    pairs = [(x, y) for x, y in zip(a, b) if not (math.isnan(x) or math.isnan(y))]
    diffs = [x - y for x, y in pairs]
    n = len(diffs)
    out = {"items": n, "a_mean": _avg([x for x, _ in pairs]), "b_mean": _avg([y for _, y in pairs]),
           "diff": _avg(diffs), **ci_fields(diffs, resamples=resamples, seed=seed)}
    dist = bootstrap_distribution(diffs, resamples=resamples, seed=seed)
    if dist:
        below, above = sum(d <= 0 for d in dist) / len(dist), sum(d >= 0 for d in dist) / len(dist)
        out["p_value"] = min(1.0, 2 * min(below, above))
    else:
        out["p_value"] = math.nan
    out["significant"] = bool(out["p_value"] < ALPHA)
    return out


def _avg(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """McNemar's test of two classifiers' accuracy on the same items (item i of ``a`` is item i of ``b``).

    ``b`` counts the items only A gets right, ``c`` those only B gets right; the others carry no information.
    Under the null each discordant item is A's or B's with probability 1/2. With ``b + c`` under 25 the exact
    two-sided binomial p-value ``min(1, 2 * P(X <= min(b, c)))``, X ~ Binomial(b + c, 1/2); otherwise the
    chi-square statistic with continuity correction ``(|b - c| - 1)^2 / (b + c)`` on 1 degree of freedom.
    No discordant item: p = 1."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"{len(a_correct)} items for A but {len(b_correct)} for B")
    b = sum(1 for x, y in zip(a_correct, b_correct) if x and not y)
    c = sum(1 for x, y in zip(a_correct, b_correct) if y and not x)
    n, discordant = len(a_correct), b + c
    out = {"items": n, "a_mean": _avg([float(bool(x)) for x in a_correct]),
           "b_mean": _avg([float(bool(y)) for y in b_correct]), "b": b, "c": c, "statistic": None}
    out["diff"] = out["a_mean"] - out["b_mean"]
    if discordant == 0:
        out.update(test="mcnemar-exact", p_value=1.0)
    elif discordant < MCNEMAR_EXACT_BELOW:
        tail = sum(math.comb(discordant, k) for k in range(min(b, c) + 1))
        out.update(test="mcnemar-exact", p_value=min(1.0, 2 * tail / 2 ** discordant))
    else:
        chi2 = (abs(b - c) - 1) ** 2 / discordant
        out.update(test="mcnemar-chi2-cc", statistic=chi2, p_value=math.erfc(math.sqrt(chi2 / 2)))
    out["significant"] = bool(out["p_value"] < ALPHA)
    return out


def length_baselines(chosen_chars: Sequence[int], rejected_chars: Sequence[int], correct: Sequence[bool], *,
                     resamples: int = CI_RESAMPLES, seed: int = CI_SEED) -> dict:
    """What response length alone gets right on the same pairs, beside the reward's own ``correct`` (1/0 per pair).

    Lengths are in characters. ``longer_wins`` is right when the chosen response is strictly longer, ``shorter_wins``
    when strictly shorter: a pair of equal lengths counts wrong for both (so the two add up to 1 - length_ties / n).
    ``rm_where_longer_rejected``: the reward's accuracy on the pairs where the rejected response is the longer one
    (length disagrees with the label). ``margin_over_best_baseline``: the reward's accuracy minus that of the better
    of the two baselines (longer-wins on a tie), by paired bootstrap over the pairs."""
    longer = [c > r for c, r in zip(chosen_chars, rejected_chars)]
    shorter = [c < r for c, r in zip(chosen_chars, rejected_chars)]
    kw = {"resamples": resamples, "seed": seed}
    out = {"longer_wins": accuracy_summary(longer, **kw), "shorter_wins": accuracy_summary(shorter, **kw),
           "length_ties": sum(c == r for c, r in zip(chosen_chars, rejected_chars)),
           "rm_where_longer_rejected": accuracy_summary([ok for ok, s in zip(correct, shorter) if s], **kw)}
    best = "longer_wins" if sum(longer) >= sum(shorter) else "shorter_wins"
    baseline = longer if best == "longer_wins" else shorter
    margin = paired_bootstrap([float(x) for x in correct], [float(x) for x in baseline], **kw)
    out["best_baseline"] = best
    out["margin_over_best_baseline"] = {k: margin[k] for k in ("diff", "ci95", "ci_resamples", "ci_seed", "p_value",
                                                               "significant")}
    return out


def beats(margin: dict) -> str:
    """A margin's verdict for a table: ``yes`` (interval above 0), ``no`` (below 0), ``n.s.`` (0 inside)."""
    low, high = margin["ci95"]
    if math.isnan(low):
        return "n/a"
    return "yes" if low > 0 else "no" if high < 0 else "n.s."
