"""Every type a plugin implements or receives, in one file: read this and ``hookspecs.py`` to extend realm.

- data: ``Message``, ``PreferenceRecord``, ``TruthfulQAItem`` (the canonical records every dataset plugin yields),
  ``SourceConfig`` and ``DatasetSource`` (what a dataset plugin subclasses), ``BadRecord``/``Excluded`` (what it
  yields, not raises, for a bad or excluded row);
- rewards: ``Reward`` (batches of (prompt, response) text in, floats out) and ``ScoreBatch``; a score of ``nan``
  means "this sample could not be scored" (only under an explicit ``on_error: nan`` policy) and consumers must
  count and exclude it;
- jobs: ``Trainer`` and ``Evaluator`` (built from a whole validated recipe, run into an output directory);
- ``NoOptions``: the ``Config`` of a plugin without options.

Nothing here imports torch or transformers: plugin modules import this at CLI start-up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from realm_cli.errors import RealmError

if TYPE_CHECKING:
    from realm_cli.recipes.recipe import Recipe

__all__ = [
    "Message", "PreferenceRecord", "TruthfulQAItem", "as_messages", "BadRecord", "Excluded", "SourceConfig",
    "DatasetSource", "NoOptions", "ScoreBatch", "Reward", "Job", "Trainer", "Evaluator",
]


@dataclass
class NoOptions:
    pass


@dataclass
class ScoreBatch:
    scores: list[float]
    extras: dict[str, list] = field(default_factory=dict)  # e.g. {"quantiles": [[...19 floats...], ...]}


class Reward:
    """Base class for reward plugins. Subclasses set ``Config`` and implement ``score_batch``."""

    Config = NoOptions
    # True for rewards that read a reference label per sample (a verifier, an exact-match check): they then receive
    # ``score_batch(prompts, responses, labels=[...])`` wherever labels exist (OpenRLHF's remote-RM ``labels``).
    uses_labels = False

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    def score_batch(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> ScoreBatch:
        raise NotImplementedError

    def score(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return self.score_batch(prompts, responses).scores

    def close(self) -> None:
        """Release clients, caches and models."""


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(slots=True)
class PreferenceRecord:
    """One preference pair: a chat prompt and two candidate final assistant turns, ``chosen`` preferred."""

    prompt: list[Message]
    chosen: str
    rejected: str
    margin: float | None = None
    source: str = ""  # dataset name
    id: str = ""  # stable id within the source, e.g. "helpful-base_test.jsonl.gz:17"
    meta: dict = field(default_factory=dict)  # source-specific extras kept downstream (e.g. reward-bench subset)

    def to_json(self) -> dict:
        out = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected, "source": self.source,
               "id": self.id}
        if self.margin is not None:
            out["margin"] = self.margin
        if self.meta:
            out["meta"] = self.meta
        return out


@dataclass(slots=True)
class TruthfulQAItem:
    """One TruthfulQA multiple-choice question (an eval item, not a pair).

    Each ``*_choices`` list keeps the source file's order; ``*_labels`` holds 1 for a true answer, 0 for a false one.
    ``mc1``: exactly one true answer, listed first (lm-evaluation-harness scores MC1 as "argmax is index 0").
    ``mc2``: several true answers (MC2 = normalised probability mass on the true ones).
    ``mc0``: best answer vs best incorrect answer (binary; only in the current 790-question release, else empty).
    ``best_answer``/``correct_answers``/``incorrect_answers``/``category``/``type`` come from the CSV (empty when only
    mc_task.json was read).
    """

    question: str
    mc1_choices: list[str]
    mc1_labels: list[int]
    mc2_choices: list[str]
    mc2_labels: list[int]
    mc0_choices: list[str] = field(default_factory=list)
    mc0_labels: list[int] = field(default_factory=list)
    best_answer: str = ""
    correct_answers: list[str] = field(default_factory=list)
    incorrect_answers: list[str] = field(default_factory=list)
    category: str = ""
    type: str = ""
    source: str = "truthfulqa"
    id: str = ""
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def as_messages(prompt: str | list[Message]) -> list[Message]:
    """A plain-string prompt is one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


class BadRecord(RealmError):
    """A malformed input record, located precisely: file, line (or row), field, and what was expected."""

    def __init__(self, file: str, line: int | None, field_name: str | None, reason: str, kind: str | None = None):
        self.file, self.line, self.field, self.reason = file, line, field_name, reason
        self.kind = kind or reason  # short reason used to count skipped records
        where = f"{file}:{line}" if line is not None else file
        what = f" field {field_name!r}:" if field_name else ""
        super().__init__(f"{where}:{what} {reason}")


class Excluded(BadRecord):
    """A well-formed record the source leaves out by design (a PandaLM tie, an SHP pair under the score ratio).

    Always skipped and counted by ``kind``, whatever the ``on_bad_record`` policy.
    """


@dataclass
class SourceConfig:
    """Options every dataset source accepts. A source plugin's ``Config`` subclasses this."""

    path: str | None = None  # local file or directory; when unset, the source's default location or hub id
    hub_id: str | None = None
    split: str | None = None
    limit: int | None = None  # read at most this many good records (stops reading early; first ones in file order)
    weight: float | None = None  # mixture weight (relative share of the train mixture)
    count: int | None = None  # take exactly this many records into the mixture (sampled by seed; repeats if short)
    on_bad_record: Literal["fail", "skip"] | None = None  # None: the data block's policy, else the source default

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit: expected a number of records >= 1, got {self.limit}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"count: expected a number of records >= 1, got {self.count}")
        if self.weight is not None and not self.weight > 0:
            raise ValueError(f"weight: expected a positive mixture weight, got {self.weight}")


class DatasetSource:
    """Base class for dataset plugins: yield records, or ``BadRecord`` exceptions (not raised) for bad input."""

    Config = SourceConfig
    # User files fail on the first bad record; curated public sets with known defects override this with "skip"
    # (each skipped record is still counted by reason).
    default_on_bad_record: Literal["fail", "skip"] = "fail"
    record_type: type = PreferenceRecord

    def __init__(self, config: SourceConfig):
        self.config = config

    def records(self) -> Iterator[PreferenceRecord | BadRecord]:
        raise NotImplementedError

    def origin(self) -> str:
        """Where the records come from (a path or a hub id), for reports."""
        return self.config.path or self.config.hub_id or ""


class Job:
    """Built with the whole validated recipe and this plugin's own options (``recipe.trainer.options``...)."""

    Config = NoOptions
    commands: tuple[str, ...] = ()  # the realm commands whose recipes may name this plugin

    def __init__(self, recipe: Recipe, config):
        self.recipe = recipe
        self.config = config

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        """Do the work, write artifacts under ``output_dir``, and return the metrics (saved as metrics.json)."""
        raise NotImplementedError


class Trainer(Job):
    commands = ("train-rm",)


class Evaluator(Job):
    commands = ("eval",)
