"""NeMo RL ranked-completions format: ``{context, completions: [{rank, completion}]}``, lower rank preferred."""

from __future__ import annotations

from realm_cli.contracts import BadRecord, Excluded
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, field, pair, prompt_value, response_value
from realm_cli.hookspecs import hookimpl


class NemoRank(RowSource):
    """Every pair of completions with different ranks becomes a record (chosen = the lower rank); equal ranks are
    ties, excluded and counted. ``context`` and each ``completion`` may be text or chat messages.
    """

    name = "nemo-rank"
    signature = Signature(keys=("context", "completions"))

    def convert(self, row: dict, where):
        prompt = prompt_value(field(row, "context", where), where, "context")
        completions = field(row, "completions", where)
        if not isinstance(completions, list) or len(completions) < 2:
            raise bad(where, "completions", "expected a list of at least two {rank, completion}", "wrong type")
        ranked = []
        for i, item in enumerate(completions):
            key = f"completions[{i}]"
            if not isinstance(item, dict) or "rank" not in item or "completion" not in item:
                raise bad(where, key, "expected {rank, completion}", "missing key")
            rank = item["rank"]
            if isinstance(rank, bool) or not isinstance(rank, (int, float)):
                raise bad(where, f"{key}.rank", f"expected a number, got {rank!r}", "wrong type")
            ranked.append((rank, response_value(item["completion"], where, f"{key}.completion"), key))
        ranked.sort(key=lambda r: r[0])
        out: list = []
        for i, (rank_a, text_a, key_a) in enumerate(ranked):
            for rank_b, text_b, key_b in ranked[i + 1:]:
                if rank_a == rank_b:
                    out.append(Excluded(where.file, where.line, key_b, f"same rank {rank_a} as {key_a}", "tie"))
                    continue
                try:
                    record = pair(prompt, text_a, text_b, where, source=self.name, fields=(key_a, key_b),
                                  meta={"chosen_rank": rank_a, "rejected_rank": rank_b})
                except BadRecord as exc:
                    out.append(exc)
                    continue
                record.id = f"{record.id}:{key_a}>{key_b}"
                out.append(record)
        return out


@hookimpl
def register_datasets(register):
    register("nemo-rank", NemoRank)
