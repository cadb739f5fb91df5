"""MT-Bench human judgments: LLMBar's processed pairs, or the raw lmsys votes reduced to majority pairs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from realm_cli.contracts import BadRecord, Excluded
from realm_cli.data.files import Location, ReadError
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, field, messages, pair, shared_path, text
from realm_cli.hookspecs import hookimpl
from realm_plugins.datasets.llmbar import LLMBAR_KEYS, llmbar_pair

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


class MTBenchHuman(RowSource):
    """MT-Bench pairs judged by humans, ``meta["subset"] = "mt-bench-human"``.

    Default: LLMBar's Processed/MT-Bench (200 ``{input, output_1, output_2, label}`` pairs) under
    ../shared/data/llmbar. Otherwise the raw votes of hub ``lmsys/mt_bench_human_judgments`` (split ``human``, or a
    local file in that schema): the votes on each (question, model pair) of the first turn are reduced to their
    majority; tie majorities, split votes and second-turn judgments (whose contexts differ between the two models)
    are excluded and counted.
    """

    name = "mt-bench-human"
    signature = (Signature(keys=("question_id", "model_a", "model_b", "winner", "conversation_a", "conversation_b"),
                           hub_ids=("lmsys/mt_bench_human_judgments",)),
                 Signature(keys=LLMBAR_KEYS, parent="MT-Bench"))  # LLMBar's processed copy
    hub_id = "lmsys/mt_bench_human_judgments"
    default_split = "human"

    def default_path(self) -> Path | None:
        return shared_path("llmbar/Processed/MT-Bench/dataset.json")

    def records(self):
        groups: dict[tuple, list[tuple[Location, dict]]] = {}
        for item in self.rows():
            if isinstance(item, ReadError):
                yield BadRecord(item.where.file, item.where.line, None, item.reason, item.kind)
                continue
            where, row = item
            try:
                if "winner" in row:
                    models = (text(row, "model_a", where), text(row, "model_b", where))
                    key = (field(row, "question_id", where), field(row, "turn", where), frozenset(models))
                    groups.setdefault(key, []).append((where, row))
                else:
                    yield llmbar_pair(row, where, source=self.name, meta={"subset": self.name})
            except BadRecord as exc:
                yield exc
        for (question, turn, _), votes in groups.items():
            try:
                yield self._majority(question, turn, votes)
            except BadRecord as exc:
                yield exc

    def _majority(self, question, turn, votes: list[tuple[Location, dict]]):
        where, first = votes[0]
        if turn != 1:
            raise Excluded(where.file, where.line, "turn", "second-turn judgment: the two contexts differ",
                           "second turn")
        tally: Counter = Counter()
        answers: dict[str, str] = {}
        for vote_where, row in votes:
            winner = text(row, "winner", vote_where)
            if winner not in WINNERS:
                raise bad(vote_where, "winner", f"expected one of {', '.join(WINNERS)}, got {winner!r}", "wrong type")
            for side in ("a", "b"):
                conversation = messages(field(row, f"conversation_{side}", vote_where), vote_where,
                                        f"conversation_{side}")
                if len(conversation) < 2 or conversation[1]["role"] != "assistant":
                    raise bad(vote_where, f"conversation_{side}", "expected a user turn then an assistant turn",
                              "wrong type")
                answers[row[f"model_{side}"]] = conversation[1]["content"]
            tally[row[winner] if winner in ("model_a", "model_b") else "tie"] += 1
        (top, count), *rest = tally.most_common()
        if rest and rest[0][1] == count:
            raise Excluded(where.file, where.line, "winner", f"no majority among votes {dict(tally)}", "no majority")
        if top == "tie":
            raise Excluded(where.file, where.line, "winner", f"majority says tie (votes {dict(tally)})", "tie")
        loser = next(m for m in answers if m != top)
        prompt = messages(first["conversation_a"], where, "conversation_a")[:1]
        return pair(prompt, answers[top], answers[loser], where, source=self.name,
                    meta={"subset": self.name, "question_id": question, "chosen_model": top,
                          "rejected_model": loser, "votes": dict(tally)})


@hookimpl
def register_datasets(register):
    register("mt-bench-human", MTBenchHuman)
