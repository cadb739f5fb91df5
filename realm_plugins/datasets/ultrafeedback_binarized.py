"""HuggingFaceH4/ultrafeedback_binarized: ``chosen``/``rejected`` conversations with their GPT-4 scores."""

from __future__ import annotations

from dataclasses import dataclass

from realm_cli.contracts import SourceConfig
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, field, messages, number, pair, split_conversations
from realm_cli.hookspecs import hookimpl


@dataclass
class UltraFeedbackConfig(SourceConfig):
    margin_from_scores: bool = False  # margin = score_chosen - score_rejected


class UltraFeedbackBinarized(RowSource):
    """Split ``train_prefs`` by default (``test_prefs`` for evaluation). Pairs whose two responses are identical
    (the binarization produces a few) are skipped and counted as "chosen == rejected"."""

    Config = UltraFeedbackConfig
    name = "ultrafeedback-binarized"
    signature = Signature(keys=("prompt", "chosen", "rejected", "score_chosen", "score_rejected"),
                          hub_ids=("HuggingFaceH4/ultrafeedback_binarized",))
    hub_id = "HuggingFaceH4/ultrafeedback_binarized"
    default_split = "train_prefs"
    default_on_bad_record = "skip"

    def convert(self, row: dict, where):
        chosen = messages(field(row, "chosen", where), where, "chosen")
        rejected = messages(field(row, "rejected", where), where, "rejected")
        prompt, chosen_text, rejected_text = split_conversations(chosen, rejected, where, ("chosen", "rejected"))
        score_chosen, score_rejected = number(row, "score_chosen", where), number(row, "score_rejected", where)
        margin = score_chosen - score_rejected if self.config.margin_from_scores else None
        record = pair(prompt, chosen_text, rejected_text, where, source=self.name, margin=margin,
                      meta={"score_chosen": score_chosen, "score_rejected": score_rejected})
        if row.get("prompt_id"):
            record.id = str(row["prompt_id"])
        return record


@hookimpl
def register_datasets(register):
    register("ultrafeedback-binarized", UltraFeedbackBinarized)
