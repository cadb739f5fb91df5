"""RewardBench v1 pairs and RewardBench 2 rows (chosen and rejected response lists), subset kept for scoring."""

from __future__ import annotations

from dataclasses import dataclass

from realm_cli.contracts import Message, PreferenceRecord, SourceConfig
from realm_cli.data.files import Location
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, field, pair, prompt_value, text
from realm_cli.evaluate.reward_bench import TIES, ties_key
from realm_cli.hookspecs import hookimpl

V2_HUB_ID = "allenai/reward-bench-2"
COUNT_KEYS = {"chosen": "num_correct", "rejected": "num_incorrect"}


@dataclass
class RewardBenchConfig(SourceConfig):
    subsets: list[str] | None = None  # keep only these subsets (e.g. [llmbar-natural, mt-bench-hard]); None: all


def responses(row: dict, key: str, where: Location) -> list[str]:
    """A RewardBench 2 response list: non-empty, strings only, as long as its ``num_correct``/``num_incorrect``
    says when the row gives one."""
    value = row[key]
    if not value:
        raise bad(where, key, "expected at least one response, got an empty list", "wrong type")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise bad(where, f"{key}[{i}]", f"expected a string, got {type(item).__name__}", "wrong type")
    count = row.get(COUNT_KEYS[key], len(value))
    if isinstance(count, bool) or count != len(value):
        raise bad(where, COUNT_KEYS[key], f"says {count!r} but {key} has {len(value)} responses", "count mismatch")
    return value


def row_shape(row: dict, where: Location) -> str:
    """The row's schema: "v1" when chosen and rejected are strings, "v2" when both are lists; else a located error."""
    values = {key: field(row, key, where) for key in ("chosen", "rejected")}
    for key, value in values.items():
        if not isinstance(value, (str, list)):
            raise bad(where, key, f"expected a string (RewardBench v1) or a list of strings (RewardBench 2), got "
                                  f"{type(value).__name__}", "wrong type")
    if type(values["chosen"]) is not type(values["rejected"]):
        want = "a list of strings" if isinstance(values["chosen"], list) else "a string"
        raise bad(where, "rejected", f"expected {want} like chosen, got {type(values['rejected']).__name__}",
                  "wrong type")
    return "v2" if isinstance(values["chosen"], list) else "v1"


def check_ties_row(item_id: str, chosen_count: int | None, where: Location) -> None:
    """A Ties id is ref:N or tied:N; a tied row has several correct answers (``chosen_count`` None: not known)."""
    key = ties_key(item_id)
    if key is None:
        raise bad(where, "id", f"expected ref:N or tied:N in the Ties subset, got {item_id!r}", "wrong type")
    if key[0] == "tied" and chosen_count is not None and chosen_count < 2:
        raise bad(where, "chosen", f"a tied row needs at least two correct answers, got {chosen_count}",
                  "wrong type")


def v2_pairs(prompt: list[Message], row: dict, subset: str, where: Location, source: str) -> list[PreferenceRecord]:
    """Every chosen x rejected pair of a RewardBench 2 row. ``meta`` holds each response's index in its list and
    the list lengths, so the evaluator rebuilds the row exactly (repeated texts included) and can tell when a
    ``limit`` cut it short; one bad pair makes the whole row bad, so a row is never scored incomplete."""
    chosen, rejected = responses(row, "chosen", where), responses(row, "rejected", where)
    if subset != TIES and len(chosen) != 1:
        raise bad(where, "chosen", f"expected one chosen response outside the {TIES} subset, got {len(chosen)}",
                  "wrong type")
    sizes = {"subset": subset, "num_correct": len(chosen), "num_incorrect": len(rejected)}
    return [pair(prompt, c, r, where, source=source, fields=(f"chosen[{i}]", f"rejected[{j}]"),
                 meta={**sizes, "chosen_index": i, "rejected_index": j})
            for i, c in enumerate(chosen) for j, r in enumerate(rejected)]


class RewardBench(RowSource):
    """RewardBench: a local file in either hub schema, or hub allenai/reward-bench (split "filtered") or
    allenai/reward-bench-2 (split "test"). Each row's shape is detected on its own:

    - v1: ``chosen`` and ``rejected`` are strings -> one pair;
    - v2: both are lists of strings -> every chosen x rejected pair (see ``v2_pairs``); one chosen response outside
      the Ties subset, ``num_correct``/``num_incorrect`` (optional) must match the list lengths.

    Every record keeps the row's ``id`` and ``meta["subset"]``; in the Ties subset the id must be ``ref:N`` or
    ``tied:N``, as the Ties scoring groups by it.
    """

    Config = RewardBenchConfig
    name = "reward-bench"
    # v1 rows also carry chosen_model/rejected_model, v2 rows num_correct/num_incorrect: subset + id tell both
    signature = Signature(keys=("prompt", "chosen", "rejected", "subset", "id"), hub_ids=("allenai/reward-bench*",))
    hub_id = "allenai/reward-bench"

    @property
    def default_split(self) -> str:
        return "test" if (self.config.hub_id or "").startswith(V2_HUB_ID) else "filtered"

    def convert(self, row: dict, where):
        subset = text(row, "subset", where)
        if self.config.subsets is not None and subset not in self.config.subsets:
            return []
        prompt = prompt_value(text(row, "prompt", where), where, "prompt")
        item_id = str(field(row, "id", where))
        shape = row_shape(row, where)
        if subset == TIES:
            check_ties_row(item_id, len(row["chosen"]) if shape == "v2" else None, where)
        if shape == "v2":
            records = v2_pairs(prompt, row, subset, where, self.name)
        else:
            records = [pair(prompt, row["chosen"], row["rejected"], where, source=self.name,
                            meta={"subset": subset})]
        for record in records:
            record.id = item_id
        return records


@hookimpl
def register_datasets(register):
    register("reward-bench", RewardBench)
