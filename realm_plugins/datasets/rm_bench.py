"""RM-Bench (THU-KEG/RM-Bench): each row a prompt with three chosen and three rejected responses, one per style
(concise, detailed plain text, detailed markdown), and a domain (chat, code, math, safety-refuse, safety-response).

A row becomes three records, chosen[k] vs rejected[k] for each style k (so the set also reads as ordinary pairs, the
diagonal of RM-Bench's matrix, in `realm eval preference` or `realm data inspect`); each keeps the row's ``id``,
``meta["domain"]``, ``meta["style"]`` and ``meta["style_index"]``, from which the ``rm-bench`` evaluator rebuilds the
whole 3x3 chosen x rejected comparison of the row.
"""

from __future__ import annotations

from realm_cli.contracts import PreferenceRecord
from realm_cli.data.files import Location
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, field, pair, prompt_value, text
from realm_cli.hookspecs import hookimpl

STYLES = ("concise", "detailed", "detailed+markdown")  # the order of RM-Bench's chosen/rejected lists
HUB_ID = "THU-KEG/RM-Bench"


def styled(row: dict, key: str, where: Location) -> list[str]:
    """A row's ``chosen`` or ``rejected``: exactly one string per style, in STYLES order."""
    value = field(row, key, where)
    if not isinstance(value, list) or len(value) != len(STYLES):
        got = f"{len(value)} responses" if isinstance(value, list) else type(value).__name__
        raise bad(where, key, f"expected a list of {len(STYLES)} responses ({', '.join(STYLES)}), got {got}",
                  "wrong type")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise bad(where, f"{key}[{i}]", f"expected a string, got {type(item).__name__}", "wrong type")
    return value


class RMBench(RowSource):
    """RM-Bench from ``path`` (its JSON, e.g. total_dataset.json, or JSONL) or hub THU-KEG/RM-Bench (split train).

    A user file stops at its first bad row; the hub copy skips and counts bad rows (a curated public set)."""

    name = "rm-bench"
    signature = Signature(keys=("id", "prompt", "chosen", "rejected", "domain"), hub_ids=(f"{HUB_ID}*",))
    hub_id = HUB_ID
    default_split = "train"

    @property
    def default_on_bad_record(self) -> str:
        return "fail" if self.config.path else "skip"

    def convert(self, row: dict, where: Location) -> list[PreferenceRecord]:
        prompt = prompt_value(text(row, "prompt", where), where, "prompt")
        domain = text(row, "domain", where)
        item_id = str(field(row, "id", where))
        chosen, rejected = styled(row, "chosen", where), styled(row, "rejected", where)
        records = [pair(prompt, chosen[k], rejected[k], where, source=self.name,
                        fields=(f"chosen[{k}]", f"rejected[{k}]"),
                        meta={"domain": domain, "style": style, "style_index": k})
                   for k, style in enumerate(STYLES)]
        for record in records:
            record.id = item_id
        return records


@hookimpl
def register_datasets(register):
    register("rm-bench", RMBench)
