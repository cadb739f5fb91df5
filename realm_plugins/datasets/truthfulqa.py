"""TruthfulQA multiple choice (MC0/MC1/MC2 targets), current and v1 releases: ``TruthfulQAItem`` eval records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from realm_cli.contracts import SourceConfig, TruthfulQAItem
from realm_cli.data.files import Location, read_rows
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, field, record_id, shared_path, text
from realm_cli.errors import RealmError
from realm_cli.hookspecs import hookimpl


def _targets(row: dict, key: str, where: Location, *, required: bool) -> tuple[list[str], list[int]]:
    """``{answer: 0|1}`` (mc_task.json) or ``{choices: [...], labels: [...]}`` (the hub copy), order kept."""
    if key not in row and not required:
        return [], []
    value = field(row, key, where)
    if isinstance(value, dict) and set(value) == {"choices", "labels"}:
        choices, labels = value["choices"], value["labels"]
    elif isinstance(value, dict):
        choices, labels = list(value), list(value.values())
    else:
        raise bad(where, key, f"expected a mapping of answer -> 0/1, got {type(value).__name__}", "wrong type")
    if (not choices or len(choices) != len(labels) or not all(isinstance(c, str) for c in choices)
            or any(label not in (0, 1) or isinstance(label, bool) for label in labels)):
        raise bad(where, key, "expected answers (strings) labelled 0 or 1", "wrong type")
    if 1 not in labels:
        raise bad(where, key, "no answer is labelled true (1)", "wrong type")
    return list(choices), [int(v) for v in labels]


def _answers(cell: str) -> list[str]:
    return [a.strip() for a in cell.split(";") if a.strip()]


@dataclass
class TruthfulQAConfig(SourceConfig):
    version: Literal["v1", "current"] = "v1"  # v1: the classic 817 questions; current: the Jan-2025 790


class TruthfulQA(RowSource):
    """TruthfulQA MC questions from mc_task.json, joined with TruthfulQA.csv (best/correct/incorrect answers,
    category) by question text when the CSV sits beside it.

    ``path``: a folder holding mc_task.json (and TruthfulQA.csv), or mc_task.json itself. Default:
    ../shared/data/truthfulqa (``version: current``) or .../truthfulqa/v1; else hub truthfulqa/truthful_qa
    (config multiple_choice, split validation; v1 only).
    """

    Config = TruthfulQAConfig
    name = "truthfulqa"
    signature = Signature(keys=("question", "mc1_targets", "mc2_targets"), files=("mc_task.json",),
                          hub_ids=("truthfulqa/truthful_qa",))
    record_type = TruthfulQAItem
    hub_id = "truthfulqa/truthful_qa"
    default_split = "validation"

    def __init__(self, config: TruthfulQAConfig):
        super().__init__(config)
        self._csv: dict[str, dict] = {}

    def default_path(self) -> Path | None:
        return shared_path("truthfulqa/v1" if self.config.version == "v1" else "truthfulqa")

    def hub_kwargs(self) -> dict:
        if self.config.version != "v1":
            raise RealmError("dataset truthfulqa: the hub copy is v1 only; set path=... for version current")
        return {"name": "multiple_choice"}

    def rows(self):
        where = Path(self.config.path).expanduser() if self.config.path else (
            None if self.config.hub_id else self.default_path())
        if where is None:
            yield from super().rows()
            return
        mc_task = where / "mc_task.json" if where.is_dir() else where
        if not mc_task.exists():
            raise RealmError(f"{mc_task}: no such file (dataset truthfulqa expects mc_task.json)")
        csv_file = mc_task.parent / "TruthfulQA.csv"
        if csv_file.exists():
            for item in read_rows(csv_file):
                if isinstance(item, tuple):
                    self._csv[" ".join(item[1].get("Question", "").split())] = item[1]
        yield from read_rows(mc_task)

    def convert(self, row: dict, where: Location) -> TruthfulQAItem:
        question = text(row, "question", where)
        mc1, mc1_labels = _targets(row, "mc1_targets", where, required=True)
        if sum(mc1_labels) != 1:
            raise bad(where, "mc1_targets", f"expected exactly one true answer, got {sum(mc1_labels)}", "wrong type")
        mc2, mc2_labels = _targets(row, "mc2_targets", where, required=True)
        mc0, mc0_labels = _targets(row, "mc0_targets", where, required=False)
        info = self._csv.get(" ".join(question.split()), {})
        return TruthfulQAItem(
            question=question, mc1_choices=mc1, mc1_labels=mc1_labels, mc2_choices=mc2, mc2_labels=mc2_labels,
            mc0_choices=mc0, mc0_labels=mc0_labels, best_answer=info.get("Best Answer", ""),
            correct_answers=_answers(info.get("Correct Answers", "")),
            incorrect_answers=_answers(info.get("Incorrect Answers", "")), category=info.get("Category", ""),
            type=info.get("Type", ""), source=self.name, id=record_id(where),
            meta={"version": self.config.version})


@hookimpl
def register_datasets(register):
    register("truthfulqa", TruthfulQA)
