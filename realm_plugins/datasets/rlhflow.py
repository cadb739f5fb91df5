"""RLHFlow's standard preference format: ``chosen`` and ``rejected`` are whole conversations sharing the prompt."""

from __future__ import annotations

from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, field, messages, pair, split_conversations
from realm_cli.hookspecs import hookimpl


def whole_conversations(row: dict) -> bool:
    """``chosen``/``rejected`` are chat-message lists starting with the prompt (an explicit prompt column, if any,
    repeats their first turns)."""
    chosen, rejected = row["chosen"], row["rejected"]
    return (isinstance(chosen, list) and isinstance(rejected, list) and bool(chosen) and isinstance(chosen[0], dict)
            and chosen[0].get("role") in ("system", "user"))


class RLHFlow(RowSource):
    """``{chosen: [messages], rejected: [messages]}``: prompt = the shared turns, responses = the final assistant
    turns (conversations whose prompt turns differ are bad records, "prompts differ"). Scores such as
    ``chosen_score``/``rejected_score`` are kept in ``meta``. Set ``path`` or ``hub_id`` (e.g.
    RLHFlow/UltraFeedback-preference-standard)."""

    name = "rlhflow"
    signature = Signature(keys=("chosen", "rejected"), row=whole_conversations, hub_ids=("RLHFlow/*",))

    def convert(self, row: dict, where):
        chosen = messages(field(row, "chosen", where), where, "chosen")
        rejected = messages(field(row, "rejected", where), where, "rejected")
        prompt, chosen_text, rejected_text = split_conversations(chosen, rejected, where, ("chosen", "rejected"))
        meta = {k: row[k] for k in ("chosen_score", "rejected_score") if k in row}
        return pair(prompt, chosen_text, rejected_text, where, source=self.name, meta=meta)


@hookimpl
def register_datasets(register):
    register("rlhflow", RLHFlow)
