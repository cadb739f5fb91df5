"""Generic preference files (JSON, JSONL, JSONL.gz, CSV, Parquet) in TRL's explicit- or implicit-prompt form."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Literal

from realm_cli.contracts import SourceConfig
from realm_cli.data.guess import Signature
from realm_cli.data.rows import (RowSource, bad, field, messages, number, pair, prompt_value, response_value,
                                    split_conversations)
from realm_cli.hookspecs import hookimpl


@dataclass
class PreferenceConfig(SourceConfig):
    prompt_key: str = "prompt"
    chosen_key: str = "chosen"
    rejected_key: str = "rejected"
    margin_key: str | None = "margin"  # read when the record has it; null ignores margins
    # explicit: prompt + completions; implicit: chosen/rejected hold the whole conversation (prompt = shared part);
    # auto: explicit when the record has prompt_key
    form: Literal["auto", "explicit", "implicit"] = "auto"


def _csv_value(value, where):
    """CSV cells are text: a cell holding a JSON message list is decoded."""
    if isinstance(value, str) and where.file.endswith((".csv", ".csv.gz")) and value.lstrip().startswith("[{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


class Preference(RowSource):
    """Any preference file: keys configurable, prompts/responses as strings or chat-message lists, optional margin.

    Explicit form: {prompt, chosen, rejected}; implicit form: {chosen, rejected} whole conversations (messages:
    the shared turns are the prompt; strings: the longest common prefix is the prompt, as TRL's extract_prompt).
    """

    Config = PreferenceConfig
    name = "preference"
    signature = Signature(keys=("chosen", "rejected"), fallback=True)  # whatever no other plugin recognises

    def convert(self, row: dict, where):
        c = self.config
        chosen = _csv_value(field(row, c.chosen_key, where), where)
        rejected = _csv_value(field(row, c.rejected_key, where), where)
        explicit = c.form == "explicit" or (c.form == "auto" and c.prompt_key in row)
        if explicit:
            prompt = prompt_value(_csv_value(field(row, c.prompt_key, where), where), where, c.prompt_key)
            chosen_text = response_value(chosen, where, c.chosen_key)
            rejected_text = response_value(rejected, where, c.rejected_key)
        elif isinstance(chosen, list) or isinstance(rejected, list):
            prompt, chosen_text, rejected_text = split_conversations(
                messages(chosen, where, c.chosen_key), messages(rejected, where, c.rejected_key), where,
                (c.chosen_key, c.rejected_key))
        else:
            chosen_text = response_value(chosen, where, c.chosen_key)
            rejected_text = response_value(rejected, where, c.rejected_key)
            cut = len(os.path.commonprefix([chosen_text, rejected_text]))
            if cut and chosen_text[cut - 1:cut] != " " and " " in chosen_text[:cut]:
                cut = chosen_text.rindex(" ", 0, cut) + 1  # do not split a word between prompt and response
            if cut == 0:
                raise bad(where, c.prompt_key, "implicit form: chosen and rejected share no prompt", "missing key")
            prompt = prompt_value(chosen_text[:cut].rstrip(), where, c.chosen_key)
            chosen_text, rejected_text = chosen_text[cut:], rejected_text[cut:]
        margin = None
        if c.margin_key and row.get(c.margin_key) not in (None, ""):
            margin = number(row, c.margin_key, where)
        # canonical JSONL written by `realm data convert` keeps its meta and ids on the way back in
        meta = row["meta"] if isinstance(row.get("meta"), dict) else {}
        record = pair(prompt, chosen_text, rejected_text, where, source=self.name, margin=margin, meta=meta,
                      fields=(c.chosen_key, c.rejected_key))
        if isinstance(row.get("id"), str) and row["id"]:
            record.id = row["id"]
        return record


@hookimpl
def register_datasets(register):
    register("preference", Preference)
