"""LLMBar (princeton-nlp): ``{input, output_1, output_2, label}`` pairs, exposed under RewardBench's subset names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from realm_cli.contracts import SourceConfig
from realm_cli.data.files import Location, read_rows
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, pair, prompt_value, shared_path, text
from realm_cli.errors import RealmError
from realm_cli.hookspecs import hookimpl

# RewardBench subset name -> folder under LLMBar's Dataset/LLMBar/
SUBSETS = {
    "llmbar-natural": "Natural",
    "llmbar-adver-neighbor": "Adversarial/Neighbor",
    "llmbar-adver-GPTInst": "Adversarial/GPTInst",
    "llmbar-adver-GPTOut": "Adversarial/GPTOut",
    "llmbar-adver-manual": "Adversarial/Manual",
}

LLMBAR_KEYS = ("input", "output_1", "output_2", "label")


def llmbar_pair(row: dict, where: Location, *, source: str, meta: dict):
    """``label`` names the better output (1 or 2); the instruction is one user turn."""
    prompt = prompt_value(text(row, "input", where), where, "input")
    first, second = text(row, "output_1", where), text(row, "output_2", where)
    label = row.get("label")
    if label not in (1, 2) or isinstance(label, bool):
        raise bad(where, "label", f"expected 1 or 2, got {label!r}", "missing key" if "label" not in row
                  else "wrong type")
    chosen, rejected = (first, second) if label == 1 else (second, first)
    fields = ("output_1", "output_2") if label == 1 else ("output_2", "output_1")
    return pair(prompt, chosen, rejected, where, source=source, meta=meta, fields=fields)


@dataclass
class LLMBarConfig(SourceConfig):
    subsets: list[str] = field(default_factory=lambda: list(SUBSETS))  # RewardBench names, see SUBSETS


class LLMBar(RowSource):
    """LLMBar Natural + Adversarial (the five Chat Hard subsets of RewardBench), subset in ``meta["subset"]``.

    ``path``: the ``LLMBar`` folder (holding Natural/ and Adversarial/) or one dataset.json (subset = its folder
    name). Default: ../shared/data/llmbar/LLMBar, else the same items from hub allenai/reward-bench (filtered).
    """

    Config = LLMBarConfig
    name = "llmbar"
    # the hub copy is a filtered view of allenai/reward-bench: that id is the reward-bench plugin's
    signature = (Signature(keys=LLMBAR_KEYS), Signature(files=("Natural", "Adversarial")))
    hub_id = "allenai/reward-bench"
    default_split = "filtered"

    def __init__(self, config: LLMBarConfig):
        super().__init__(config)
        unknown = [s for s in config.subsets if s not in SUBSETS]
        if unknown:
            raise RealmError(f"dataset llmbar: unknown subset {unknown[0]!r} (known: {', '.join(SUBSETS)})")
        self._subset_of: dict[str, str] = {}

    def default_path(self) -> Path | None:
        return shared_path("llmbar/LLMBar")

    def rows(self):
        root = Path(self.config.path).expanduser() if self.config.path else (
            None if self.config.hub_id else self.default_path())
        if root is None:
            yield from super().rows()  # hub rows carry their own ``subset``
            return
        if root.is_file():
            self._subset_of[str(root)] = root.parent.name
            yield from read_rows(root)
            return
        for subset in self.config.subsets:
            file = root / SUBSETS[subset] / "dataset.json"
            if not file.exists():
                raise RealmError(f"{file}: no such file (dataset llmbar, subset {subset})")
            self._subset_of[str(file)] = subset
            yield from read_rows(file)

    def convert(self, row: dict, where: Location):
        if where.file.startswith("hf://"):
            subset = text(row, "subset", where)
            if subset not in self.config.subsets:
                return []
            prompt = prompt_value(text(row, "prompt", where), where, "prompt")
            return pair(prompt, text(row, "chosen", where), text(row, "rejected", where), where, source=self.name,
                        meta={"subset": subset})
        return llmbar_pair(row, where, source=self.name, meta={"subset": self._subset_of[where.file]})


@hookimpl
def register_datasets(register):
    register("llmbar", LLMBar)
