"""The `qrm` reward: QRM-Llama3.1-8B-v2, a quantile reward model (custom code, Llama-3 chat template)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from realm_cli.contracts import Message
from realm_cli.errors import RealmError
from realm_cli.contracts import Reward, ScoreBatch

# QRM's gating network reads the hidden state at this token run and raises without it: the Llama-3 template is
# mandatory, so a tokenizer that renders anything else is refused before the model runs.
LLAMA3_ASSISTANT_HEADER = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
# The one repository whose custom code (QRM's quantile and gating heads) runs without being asked for: the published
# QRM model, fetched from the hub by its id. Any other folder's Python runs only with reward.trust_remote_code=true.
TRUSTED_REMOTE_CODE = {"nicolinho/QRM-Llama3.1-8B-v2"}


@dataclass
class QRMConfig:
    model: str = "qrm-llama3.1-8b-v2"  # alias, local dir or hub id (nicolinho/QRM-Llama3.1-8B-v2)
    batch_size: int = 8
    max_length: int = 4096  # longer conversations lose their oldest tokens (counted in extras["truncated"])
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on GPUs and AMX/AVX512-BF16 CPUs
    device: str | None = None  # default: cuda when available
    # The quantile/gating heads are custom code in the model repository. None: run it only for the published QRM
    # hub id (TRUSTED_REMOTE_CODE); true: run any model folder's code; false: never.
    trust_remote_code: bool | None = None


class QRMReward(Reward):
    """QRM quantile reward model: score = expected reward, extras["quantiles"] = 19 quantiles (0.05 … 0.95)."""

    Config = QRMConfig

    def __init__(self, config=None):
        super().__init__(config)
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from realm_cli import models

        c = self.config
        self.device = c.device or ("cuda" if torch.cuda.is_available() else "cpu")
        bf16 = c.precision == "bf16" or (c.precision == "auto" and models.bf16_supported(self.device))
        path = models.local_path(c.model)
        resolved = models.resolve(c.model)
        trust = c.trust_remote_code if c.trust_remote_code is not None else (
            resolved.source == "hub" and resolved.location in TRUSTED_REMOTE_CODE)
        try:
            with models.loading(c.model):
                self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
                self.model = AutoModelForSequenceClassification.from_pretrained(
                    path, trust_remote_code=trust, dtype=torch.bfloat16 if bf16 else torch.float32)
        except RealmError as exc:
            if not trust and "contains custom code" in str(exc):
                raise RealmError(f"qrm reward {c.model!r}: the model ships its own Python code, which realm runs only "
                                 f"when asked: set reward.trust_remote_code=true if you trust {path}") from None
            raise
        self.model.to(self.device).eval()
        tok = self.tokenizer
        # Padding is only safe with a token that never occurs in a real conversation: Llama-3 tokenizers often
        # pad with <|eot_id|>, which also ends every turn. Without a dedicated pad token, batch equal lengths only.
        specials = {tok.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|end_of_text|>")} | {tok.eos_token_id}
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None and tok.pad_token_id not in specials else None

    def _encode(self, prompt: list[Message], response: str) -> tuple[list[int], bool]:
        conversation = [{"role": m["role"], "content": m["content"]} for m in prompt]
        conversation.append({"role": "assistant", "content": response})
        if not getattr(self.tokenizer, "chat_template", None):
            raise RealmError(f"qrm reward {self.config.model!r}: the tokenizer has no chat template; QRM needs the "
                             f"Llama-3 template")
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False)
        if LLAMA3_ASSISTANT_HEADER not in text:
            raise RealmError(f"qrm reward {self.config.model!r}: the tokenizer's chat template is not Llama-3's "
                             f"(no {LLAMA3_ASSISTANT_HEADER!r} in the rendered conversation); QRM reads that token run")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.config.max_length:
            return ids, False
        return ids[-self.config.max_length:], True

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
        if self.pad_id is None:
            groups: dict[int, list[int]] = {}
            for i in order:
                groups.setdefault(lengths[i], []).append(i)
            return [g[s:s + self.config.batch_size] for g in groups.values()
                    for s in range(0, len(g), self.config.batch_size)]
        return [order[s:s + self.config.batch_size] for s in range(0, len(order), self.config.batch_size)]

    def score_batch(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> ScoreBatch:
        import torch

        encoded = [self._encode(p, r) for p, r in zip(prompts, responses)]
        seqs = [ids for ids, _ in encoded]
        scores = [math.nan] * len(seqs)  # every index belongs to exactly one batch below
        quantiles: list[list[float]] = [[] for _ in seqs]
        for batch in self._batches([len(s) for s in seqs]):
            width = max(len(seqs[i]) for i in batch)
            pad = self.pad_id if self.pad_id is not None else 0
            ids = torch.tensor([seqs[i] + [pad] * (width - len(seqs[i])) for i in batch], device=self.device)
            mask = torch.tensor([[1] * len(seqs[i]) + [0] * (width - len(seqs[i])) for i in batch], device=self.device)
            with torch.inference_mode():
                out = self.model(input_ids=ids, attention_mask=mask)
            for row, i in enumerate(batch):
                scores[i] = float(out.score.float().reshape(len(batch), -1)[row, 0])
                quantiles[i] = out.reward_quantiles.float()[row].tolist()
        return ScoreBatch(scores, {"quantiles": quantiles, "truncated": [t for _, t in encoded]})

    def close(self) -> None:
        self.model = None
