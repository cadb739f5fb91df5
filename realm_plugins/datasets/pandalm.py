"""PandaLM human test set: two responses judged by three annotators; the majority label decides, ties excluded."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from realm_cli.contracts import Excluded, SourceConfig
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, field, pair, prompt_value, shared_path, text
from realm_cli.hookspecs import hookimpl

ANNOTATORS = ("annotator1", "annotator2", "annotator3")


@dataclass
class PandaLMConfig(SourceConfig):
    # Some 7B base models answered nothing and the annotators judged that too; true keeps those pairs for
    # evaluation (an empty answer is a fair thing to rank last), false skips and counts them.
    keep_empty_responses: bool = False


class PandaLM(RowSource):
    """PandaLM testset-v1: prompt = instruction (+ input), chosen = the response the annotator majority prefers.

    Labels: 1 = response1 better, 2 = response2 better, 0 = tie. Items whose majority is a tie, or with no
    majority at all, are excluded and counted ("tie", "no majority"); pairs with an empty or duplicate
    response are skipped and counted. Default: ../shared/data/pandalm/testset-v1.json.
    """

    Config = PandaLMConfig
    name = "pandalm"
    signature = Signature(keys=("annotator1", "annotator2", "annotator3", "response1", "response2"))
    default_on_bad_record = "skip"  # some 7B base-model responses are empty: counted as "empty response"

    def default_path(self) -> Path | None:
        return shared_path("pandalm/testset-v1.json")

    def convert(self, row: dict, where):
        votes = []
        for key in ANNOTATORS:
            vote = field(row, key, where)
            if vote not in (0, 1, 2) or isinstance(vote, bool):
                raise bad(where, key, f"expected 0, 1 or 2, got {vote!r}", "wrong type")
            votes.append(vote)
        label, count = Counter(votes).most_common(1)[0]
        if count < 2:
            raise Excluded(where.file, where.line, "annotator1", f"no majority among votes {votes}", "no majority")
        if label == 0:
            raise Excluded(where.file, where.line, "annotator1", f"majority says tie (votes {votes})", "tie")
        instruction, extra = text(row, "instruction", where), text(row, "input", where)
        prompt = prompt_value(f"{instruction}\n\n{extra}" if extra.strip() else instruction, where, "instruction")
        first, second = text(row, "response1", where), text(row, "response2", where)
        chosen, rejected = (first, second) if label == 1 else (second, first)
        fields = ("response1", "response2") if label == 1 else ("response2", "response1")
        return pair(prompt, chosen, rejected, where, source=self.name, fields=fields,
                    allow_empty=self.config.keep_empty_responses,
                    meta={"idx": row.get("idx"), "cmp_key": row.get("cmp_key"), "votes": votes,
                          "agreement": count / 3})


@hookimpl
def register_datasets(register):
    register("pandalm", PandaLM)
