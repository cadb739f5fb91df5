"""What ``realm data inspect`` reports: counts, length percentiles, duplicate pairs, length fitting, examples."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable

from rich.console import Group
from rich.table import Table

from realm_cli.contracts import PreferenceRecord

from realm_cli.data.load import LoadReport
from realm_cli.data.report import skipped_table, sources_table

PERCENTILES = (50, 90, 95, 99, 100)


def percentiles(values: list[int]) -> dict[str, int]:
    """Nearest-rank percentiles (p100 = max); empty input gives an empty mapping."""
    if not values:
        return {}
    ordered = sorted(values)
    return {f"p{p}": ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))] for p in PERCENTILES}


def _pair_key(record: PreferenceRecord) -> str:
    blob = json.dumps([record.prompt, record.chosen, record.rejected], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def duplicates(records: list) -> dict:
    """Pairs whose prompt, chosen and rejected all repeat an earlier record, and repeated prompts."""
    pairs = [r for r in records if isinstance(r, PreferenceRecord)]
    pair_counts = Counter(_pair_key(r) for r in pairs)
    prompt_counts = Counter(json.dumps(r.prompt, sort_keys=True) for r in pairs)
    return {"duplicate_pairs": sum(n - 1 for n in pair_counts.values()),
            "repeated_prompts": sum(n - 1 for n in prompt_counts.values())}


def lengths(records: list, fmt=None) -> dict[str, dict[str, int]]:
    """Length percentiles per field: words, or with an ``RMFormat`` its tokens (the one counter train-rm fits
    with): the prompt as the format renders it (template or sentence-pair specials included), each response's
    own tokens, and ``input``, the longer side of prompt + response that ``max_length`` applies to."""
    pairs = [r for r in records if isinstance(r, PreferenceRecord)]
    if not pairs:
        return {}
    if fmt is None:
        def size(texts: list[str]) -> list[int]:
            return [len(t.split()) for t in texts]
        return {"prompt": percentiles(size(["\n".join(m["content"] for m in r.prompt) for r in pairs])),
                "chosen": percentiles(size([r.chosen for r in pairs])),
                "rejected": percentiles(size([r.rejected for r in pairs]))}
    return {"prompt": percentiles([fmt.count(r.prompt, "") for r in pairs]),
            "chosen": percentiles([fmt.tokens(r.chosen) for r in pairs]),
            "rejected": percentiles([fmt.tokens(r.rejected) for r in pairs]),
            "input": percentiles([max(fmt.count(r.prompt, r.chosen), fmt.count(r.prompt, r.rejected))
                                  for r in pairs])}


def fit_counts(records: list, fit: Callable) -> dict[str, int]:
    counts = Counter(fit(r)[1] for r in records if isinstance(r, PreferenceRecord))
    return {"ok": counts["ok"], "truncated": counts["truncated"], "dropped": counts["dropped"]}


def summary(records: list, report: LoadReport, *, fmt=None, fit=None, examples: int = 3) -> dict:
    """``fmt``: an ``RMFormat`` (token lengths, else words); ``fit``: the ``PairFitter`` train-rm would use."""
    out = {"source": report.to_json(), "record_type": type(records[0]).__name__ if records else None,
           "records": len(records), **duplicates(records),
           "length_unit": "tokens" if fmt is not None else "words", "lengths": lengths(records, fmt),
           "examples": [r.to_json() for r in records[:examples]]}
    if fit is not None:
        out["length_fitting"] = {"max_length": fit.max_length, "overlong": fit.overlong, **fit_counts(records, fit)}
    return out


def _clip(text: str, width: int = 400) -> str:
    return text if len(text) <= width else text[:width] + f" … (+{len(text) - width} chars)"


def summary_tables(info: dict, report: LoadReport) -> Group:
    parts = [sources_table([("", report)], title=f"dataset {report.name}")]
    skipped = skipped_table([("", report)])
    if skipped is not None:
        parts.append(skipped)
    counts = Table(title="counts")
    counts.add_column("what")
    counts.add_column("count", justify="right")
    for key in ("records", "duplicate_pairs", "repeated_prompts"):
        counts.add_row(key.replace("_", " "), str(info[key]))
    for key, value in info.get("length_fitting", {}).items():
        if key not in ("max_length", "overlong"):
            counts.add_row(f"{key} at max_length {info['length_fitting']['max_length']} "
                           f"({info['length_fitting']['overlong']})", str(value))
    parts.append(counts)
    if info["lengths"]:
        table = Table(title=f"lengths ({info['length_unit']})")
        table.add_column("field")
        for p in PERCENTILES:
            table.add_column("max" if p == 100 else f"p{p}", justify="right")
        for name, values in info["lengths"].items():
            table.add_row(name, *(str(values[f"p{p}"]) for p in PERCENTILES))
        parts.append(table)
    for example in info["examples"]:
        table = Table(title=f"example {example.get('id', '')}", show_header=False, expand=True)
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in example.items():
            if key == "prompt":
                for m in value:
                    table.add_row(f"prompt {m['role']}", _clip(m["content"]))
            elif key not in ("id",):
                table.add_row(key, _clip(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))
        parts.append(table)
    return Group(*parts)
