"""Anthropic HH-RLHF transcripts (``\\n\\nHuman: … \\n\\nAssistant: …``) as chat prompts and final-turn pairs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from realm_cli.contracts import Message, SourceConfig
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, pair, shared_path, text
from realm_cli.hookspecs import hookimpl

ASSISTANT = "\n\nAssistant:"
TURN = re.compile(r"\n\n(Human|Assistant):")
ROLE = {"Human": "user", "Assistant": "assistant"}


def transcript_messages(transcript: str) -> list[Message]:
    """Split a transcript on its ``\\n\\nHuman:`` / ``\\n\\nAssistant:`` markers into chat messages."""
    marks = list(TURN.finditer(transcript))
    out: list[Message] = []
    for mark, following in zip(marks, marks[1:] + [None]):
        end = following.start() if following else len(transcript)
        out.append({"role": ROLE[mark.group(1)], "content": transcript[mark.end():end].strip()})
    return out


def is_transcript(row: dict) -> bool:
    """``chosen`` is a whole ``\\n\\nHuman: …`` transcript and there is no separate prompt column."""
    return isinstance(row["chosen"], str) and row["chosen"].startswith("\n\nHuman:") and "prompt" not in row


@dataclass
class HHConfig(SourceConfig):
    subset: Literal["helpful-base", "harmless-base", "helpful-online", "helpful-rejection-sampled"] = "helpful-base"


class HHRLHF(RowSource):
    """Anthropic HH-RLHF: prompt = the shared dialogue prefix, chosen/rejected = the differing final assistant turns.

    Default: ../shared/data/hh-rlhf/{subset}_{split}.jsonl.gz (split "test"), else hub Anthropic/hh-rlhf.
    Pairs whose transcripts diverge before the final assistant turn, whose final turns are identical, or with an
    empty final turn are skipped and counted by reason (the public test files hold a few of each).
    """

    Config = HHConfig
    name = "hh-rlhf"
    signature = Signature(keys=("chosen", "rejected"), row=is_transcript, hub_ids=("Anthropic/hh-rlhf",))
    hub_id = "Anthropic/hh-rlhf"
    default_split = "test"
    default_on_bad_record = "skip"

    def default_path(self) -> Path | None:
        return shared_path(f"hh-rlhf/{self.config.subset}_{self.config.split or self.default_split}.jsonl.gz")

    def hub_kwargs(self) -> dict:
        return {"data_dir": self.config.subset}

    def convert(self, row: dict, where):
        chosen, rejected = text(row, "chosen", where), text(row, "rejected", where)
        shared = os.path.commonprefix([chosen, rejected])
        cut = shared.rfind(ASSISTANT)
        if cut < 0:
            raise bad(where, "rejected", "no shared dialogue ending in an Assistant turn", "prompts differ")
        start = cut + len(ASSISTANT)
        chosen_turn, rejected_turn = chosen[start:], rejected[start:]
        for turn, key in ((chosen_turn, "chosen"), (rejected_turn, "rejected")):
            if TURN.search(turn):
                raise bad(where, key, "the transcripts diverge before their final assistant turn", "prompts differ")
        prompt = transcript_messages(chosen[:cut])
        if not prompt or prompt[-1]["role"] != "user":
            raise bad(where, "chosen", "the dialogue before the final assistant turn does not end with a Human turn",
                      "wrong type")
        return pair(prompt, chosen_turn.strip(), rejected_turn.strip(), where, source=self.name,
                    meta={"subset": self.config.subset})


@hookimpl
def register_datasets(register):
    register("hh-rlhf", HHRLHF)
