"""Stanford Human Preferences (SHP): Reddit comment pairs preferred by score, with the paper's score-ratio filter."""

from __future__ import annotations

from dataclasses import dataclass

from realm_cli.contracts import Excluded, SourceConfig
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, field, number, pair, prompt_value, text
from realm_cli.hookspecs import hookimpl


@dataclass
class SHPConfig(SourceConfig):
    # The SHP paper trains on pairs whose preferred comment has at least 2x the other's score; null keeps all.
    min_score_ratio: float | None = None


class SHP(RowSource):
    """stanfordnlp/SHP: prompt = ``history``, ``labels`` 1 = ``human_ref_A`` preferred, else ``human_ref_B``.

    Pairs under ``min_score_ratio`` are excluded and counted ("below score ratio"); ``meta`` keeps the scores.
    """

    Config = SHPConfig
    name = "shp"
    signature = Signature(keys=("history", "human_ref_A", "human_ref_B", "labels"), hub_ids=("stanfordnlp/SHP",))
    hub_id = "stanfordnlp/SHP"
    default_on_bad_record = "skip"

    def convert(self, row: dict, where):
        label = field(row, "labels", where)
        if label not in (0, 1) or isinstance(label, bool):
            raise bad(where, "labels", f"expected 0 or 1, got {label!r}", "wrong type")
        score_a, score_b = number(row, "score_A", where), number(row, "score_B", where)
        high, low = max(score_a, score_b), min(score_a, score_b)
        ratio = high / low if low > 0 else float("inf")
        if self.config.min_score_ratio is not None and ratio < self.config.min_score_ratio:
            raise Excluded(where.file, where.line, "score_A",
                           f"score ratio {ratio:.2f} < {self.config.min_score_ratio}", "below score ratio")
        a, b = text(row, "human_ref_A", where), text(row, "human_ref_B", where)
        chosen, rejected = (a, b) if label == 1 else (b, a)
        fields = ("human_ref_A", "human_ref_B") if label == 1 else ("human_ref_B", "human_ref_A")
        return pair(prompt_value(text(row, "history", where), where, "history"), chosen, rejected, where,
                    source=self.name, fields=fields,
                    meta={"post_id": row.get("post_id"), "domain": row.get("domain"), "score_A": score_a,
                          "score_B": score_b})


@hookimpl
def register_datasets(register):
    register("shp", SHP)
