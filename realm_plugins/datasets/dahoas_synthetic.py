"""Dahoas/synthetic-instruct-gptj-pairwise: ``prompt``, ``chosen``, ``rejected`` as plain text."""

from __future__ import annotations

from realm_cli.data.rows import RowSource, pair, prompt_value, text
from realm_cli.hookspecs import hookimpl


class DahoasSynthetic(RowSource):
    """Synthetic instruction pairs (GPT-J rejected vs. a better chosen answer); the prompt is one user turn."""

    name = "dahoas-synthetic"
    hub_id = "Dahoas/synthetic-instruct-gptj-pairwise"
    default_on_bad_record = "skip"

    def convert(self, row: dict, where):
        prompt = prompt_value(text(row, "prompt", where), where, "prompt")
        return pair(prompt, text(row, "chosen", where), text(row, "rejected", where), where, source=self.name)


@hookimpl
def register_datasets(register):
    register("dahoas-synthetic", DahoasSynthetic)
