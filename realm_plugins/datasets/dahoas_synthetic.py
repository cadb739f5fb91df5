"""Dahoas/synthetic-instruct-gptj-pairwise: ``prompt``, ``chosen``, ``rejected`` as plain text."""

from __future__ import annotations

from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, pair, prompt_value, text
from realm_cli.hookspecs import hookimpl


class DahoasSynthetic(RowSource):
    """Synthetic instruction pairs (GPT-J rejected vs. a better chosen answer); the prompt is one user turn."""

    name = "dahoas-synthetic"
    # plain prompt/chosen/rejected rows are the generic preference reader's: only the hub id is this plugin's
    signature = Signature(hub_ids=("Dahoas/synthetic-instruct-gptj-pairwise",))
    hub_id = "Dahoas/synthetic-instruct-gptj-pairwise"
    default_on_bad_record = "skip"

    def convert(self, row: dict, where):
        prompt = prompt_value(text(row, "prompt", where), where, "prompt")
        return pair(prompt, text(row, "chosen", where), text(row, "rejected", where), where, source=self.name)


@hookimpl
def register_datasets(register):
    register("dahoas-synthetic", DahoasSynthetic)
