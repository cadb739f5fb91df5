"""The canonical preference record, the dataset-source contract, and the loading API trainers and evaluators use.

Every dataset plugin turns its source format into ``PreferenceRecord``s (or, for TruthfulQA, ``TruthfulQAItem``s);
everything downstream speaks only those. ``load_source`` reads one plugin; ``load`` builds the train mixture and the
named validation sets of a recipe's ``data:`` block. Nothing is dropped silently: every skipped, truncated or dropped
record is counted by reason in a report that renders as rich tables and as JSON.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.contracts import BadRecord, DatasetSource, Excluded, PreferenceRecord, SourceConfig
from realm_cli.errors import RealmError


@dataclass
class DataConfig:
    """The recipe's ``data:`` block."""

    train: list[PluginSpec] = plugin_field("dataset", default_factory=list)
    validation: dict[str, list[PluginSpec]] = plugin_field("dataset", default_factory=dict)
    validation_split: float = 0.0  # fraction of the train mixture held out as validation set "held-out"
    max_length: int | None = None  # tokens of prompt + response
    overlong: Literal["truncate", "drop"] = "truncate"
    # None: each source's default ("fail" for user files, "skip"-and-count for curated public sets)
    on_bad_record: Literal["fail", "skip"] | None = None
    seed: int = 42

    def __post_init__(self):
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split: expected a fraction in [0, 1), got {self.validation_split}")
        if self.max_length is not None and self.max_length <= 0:
            raise ValueError(f"max_length: expected a positive number of tokens, got {self.max_length}")


def shared_data_dir() -> Path | None:
    """The offline copies of public data: ``$REALM_SHARED_DATA``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("REALM_SHARED_DATA")
    path = Path(env).expanduser() if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return path if path.is_dir() else None


@dataclass
class LoadReport:
    """What happened to every record of one source: read = kept + sum(skipped) (+ truncated/dropped by length)."""

    name: str
    origin: str = ""
    policy: str = "fail"
    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    first_error: dict[str, str] = field(default_factory=dict)  # reason -> first "file:line: message"
    limit_reached: bool = False

    def add_skip(self, bad: BadRecord) -> None:
        self.skipped[bad.kind] += 1
        self.first_error.setdefault(bad.kind, str(bad))

    def to_json(self) -> dict:
        return {"name": self.name, "origin": self.origin, "policy": self.policy, "read": self.read, "kept": self.kept,
                "skipped": dict(self.skipped), "first_error": dict(self.first_error),
                "limit_reached": self.limit_reached}


@dataclass
class Loaded:
    records: list
    report: LoadReport


def source_for(spec: PluginSpec) -> DatasetSource:
    """Instantiate the dataset plugin a spec names (raw options, e.g. a ``Config`` default, validated first)."""
    from realm_cli import plugins

    return plugins.instance("dataset", spec)


def _policy(source: DatasetSource, on_bad_record: str | None) -> str:
    return on_bad_record or source.config.on_bad_record or source.default_on_bad_record


def iter_source(spec: PluginSpec | DatasetSource, report: LoadReport, *,
                on_bad_record: str | None = None) -> Iterator:
    """Stream one source's good records, counting every skipped one into ``report`` (raising under ``fail``)."""
    source = spec if isinstance(spec, DatasetSource) else source_for(spec)
    policy = _policy(source, on_bad_record)
    report.policy = policy
    report.origin = report.origin or source.origin()
    limit = source.config.limit
    for item in source.records():
        if limit is not None and report.kept >= limit:
            report.limit_reached = True
            break
        report.read += 1
        if isinstance(item, BadRecord):
            if policy == "fail" and not isinstance(item, Excluded):
                raise item
            report.add_skip(item)
            continue
        report.kept += 1
        yield item


def load_source(spec: PluginSpec | DatasetSource, *, on_bad_record: str | None = None) -> Loaded:
    """All good records of one dataset plugin plus its ``LoadReport``.

    ``on_bad_record``: "fail" raises the first bad record as a one-line RealmError (file:line, field, reason);
    "skip" counts it by reason; None uses the spec's own option, else the plugin's default.
    """
    name = spec.name if isinstance(spec, PluginSpec) else type(spec).__name__
    report = LoadReport(name)
    records = list(iter_source(spec, report, on_bad_record=on_bad_record))
    return Loaded(records, report)


@dataclass
class SplitReport:
    records: int = 0  # before length fitting
    kept: int = 0
    truncated: int = 0
    dropped: int = 0  # overlong records removed under ``overlong: drop`` (or unfittable under truncate)

    def to_json(self) -> dict:
        return {"records": self.records, "kept": self.kept, "truncated": self.truncated, "dropped": self.dropped}


@dataclass
class DataReport:
    """Per-source load reports, how the mixture was drawn, and per-split length-fitting counts."""

    sources: dict[str, list[LoadReport]] = field(default_factory=dict)  # split name -> its sources
    mixture: list[dict] = field(default_factory=list)  # {"source", "available", "taken"} for the train sources
    splits: dict[str, SplitReport] = field(default_factory=dict)
    max_length: int | None = None
    overlong: str = "truncate"
    length_fitted: bool = False
    seed: int = 42

    def to_json(self) -> dict:
        return {"sources": {k: [r.to_json() for r in v] for k, v in self.sources.items()},
                "mixture": self.mixture, "splits": {k: v.to_json() for k, v in self.splits.items()},
                "max_length": self.max_length, "overlong": self.overlong, "length_fitted": self.length_fitted,
                "seed": self.seed}

    def __rich__(self):
        from realm_cli.data.report import data_report_tables

        return data_report_tables(self)


@dataclass
class PreferenceSplits:
    train: list[PreferenceRecord]
    validation: dict[str, list[PreferenceRecord]]
    report: DataReport


Fit = Callable[[PreferenceRecord], tuple[PreferenceRecord, str]]


def _load_pairs(spec: PluginSpec, split: str, on_bad_record: str | None,
                report: DataReport) -> tuple[PluginSpec, SourceConfig, list]:
    source = source_for(spec)
    loaded = load_source(source, on_bad_record=on_bad_record)
    loaded.report.name = spec.name
    report.sources.setdefault(split, []).append(loaded.report)
    bad = next((r for r in loaded.records if not isinstance(r, PreferenceRecord)), None)
    if bad is not None:
        raise RealmError(f"dataset {spec.name} yields {type(bad).__name__} records, not preference pairs: "
                         f"it cannot be used in data.{split} (use it through an evaluator)")
    return spec, source.config, loaded.records


def _draw(records: list, count: int, rng: random.Random) -> list:
    """``count`` records: whole copies while ``count`` exceeds the pool, then a seeded sample without repeats."""
    if not records:
        return []
    copies, rest = divmod(count, len(records))
    return records * copies + rng.sample(records, rest)


def _mix(pools: list[tuple[PluginSpec, SourceConfig, list]], rng: random.Random, mixture: list[dict] | None) -> list:
    """Weights are relative shares of the largest mixture that repeats no record; counts are exact sizes."""
    shares = {i: c.weight for i, (_, c, _) in enumerate(pools) if c.weight is not None and c.count is None}
    unweighted = [s.name for s, c, _ in pools if c.weight is None and c.count is None]
    if shares and unweighted:
        raise RealmError(f"data mixture: give every source a weight (or a count), or none; missing for {unweighted}")
    if any(w <= 0 for w in shares.values()):
        raise RealmError("data mixture: weights must be positive")
    total = sum(shares.values())
    size = min((len(pools[i][2]) / (w / total) for i, w in shares.items()), default=0.0)
    out = []
    for i, (spec, config, records) in enumerate(pools):
        if config.count is not None:
            taken = _draw(records, config.count, rng)
        elif i in shares:
            taken = rng.sample(records, min(len(records), round(size * shares[i] / total)))
        else:
            taken = records
        if mixture is not None:
            mixture.append({"source": spec.name, "available": len(records), "taken": len(taken)})
        out.extend(taken)
    return out


def _fit_split(name: str, records: list[PreferenceRecord], fit: Fit | None, report: DataReport) -> list:
    split = SplitReport(records=len(records))
    report.splits[name] = split
    if fit is None:
        split.kept = len(records)
        return records
    out = []
    for record in records:
        fitted, status = fit(record)
        if status == "ok":
            out.append(fitted)
        elif status == "truncated":
            split.truncated += 1
            out.append(fitted)
        elif status in ("dropped", "overlong"):
            split.dropped += 1
        else:
            raise ValueError(f"length fitter returned unknown status {status!r}")
    split.kept = len(out)
    return out


def load(cfg: DataConfig, *, fit: Fit | None = None) -> PreferenceSplits:
    """The recipe's train mixture and named validation sets, deterministic for ``cfg.seed``.

    ``fit(record) -> (record, status)`` with status "ok" | "truncated" | "dropped" fits lengths (see
    ``make_length_fitter``); without it no length handling happens and the report says so.
    """
    if not cfg.train and not cfg.validation:
        raise RealmError("data: no train or validation datasets given")
    report = DataReport(max_length=getattr(fit, "max_length", cfg.max_length),
                        overlong=getattr(fit, "overlong", cfg.overlong), length_fitted=fit is not None, seed=cfg.seed)
    rng = random.Random(cfg.seed)
    pools = [_load_pairs(spec, "train", cfg.on_bad_record, report) for spec in cfg.train]
    train = _mix(pools, rng, report.mixture)
    rng.shuffle(train)
    validation: dict[str, list] = {}
    for name, specs in cfg.validation.items():
        validation[name] = _mix([_load_pairs(s, name, cfg.on_bad_record, report) for s in specs], rng, None)
    if cfg.validation_split > 0:
        if "held-out" in validation:
            raise RealmError("data.validation: the name 'held-out' is taken by validation_split")
        held = round(len(train) * cfg.validation_split)
        if held == 0 or held == len(train):
            raise RealmError(f"data.validation_split={cfg.validation_split} of {len(train)} train records leaves "
                             f"{'no held-out' if held == 0 else 'no train'} records")
        validation["held-out"] = train[len(train) - held:]
        train = train[: len(train) - held]
    train = _fit_split("train", train, fit, report)
    validation = {name: _fit_split(name, records, fit, report) for name, records in validation.items()}
    return PreferenceSplits(train, validation, report)
