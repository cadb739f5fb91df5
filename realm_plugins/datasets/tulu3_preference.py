"""AllenAI Tulu 3 preference mixture: ``prompt`` plus whole ``chosen``/``rejected`` conversations."""

from __future__ import annotations

from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, field, messages, pair, split_conversations
from realm_cli.hookspecs import hookimpl


class Tulu3Preference(RowSource):
    """allenai/llama-3.1-tulu-3-8b-preference-mixture: prompt = the turns shared by ``chosen`` and ``rejected``;
    ``meta`` keeps the item's ``source`` and the two models' names."""

    name = "tulu3-preference"
    signature = Signature(keys=("prompt", "chosen", "rejected", "chosen_rating", "rejected_rating"),
                          hub_ids=("allenai/llama-3.1-tulu-3-*preference-mixture",))
    hub_id = "allenai/llama-3.1-tulu-3-8b-preference-mixture"
    default_on_bad_record = "skip"

    def convert(self, row: dict, where):
        chosen = messages(field(row, "chosen", where), where, "chosen")
        rejected = messages(field(row, "rejected", where), where, "rejected")
        prompt, chosen_text, rejected_text = split_conversations(chosen, rejected, where, ("chosen", "rejected"))
        record = pair(prompt, chosen_text, rejected_text, where, source=self.name,
                      meta={k: row[k] for k in ("source", "chosen_model", "rejected_model") if k in row})
        if row.get("id"):
            record.id = str(row["id"])
        return record


@hookimpl
def register_datasets(register):
    register("tulu3-preference", Tulu3Preference)
