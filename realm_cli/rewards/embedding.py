"""The `embedding` reward: cosine similarity of prompt and response embeddings (sentence-transformers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from realm_cli.contracts import Message
from realm_cli.contracts import Reward, ScoreBatch

# Models whose repositories ship custom code: loading them needs trust_remote_code.
REMOTE_CODE_MODELS = {"bilingual-embedding-large", "Lajavaness/bilingual-embedding-large"}


@dataclass
class EmbeddingConfig:
    model: str = "minilm-l6"  # alias (`realm models list`), local dir or hub id; e.g. bilingual-embedding-large
    batch_size: int = 64
    prompt_text: Literal["last_user", "conversation"] = "last_user"  # what of a chat prompt is embedded
    device: str = "cpu"
    trust_remote_code: bool = False  # forced on for the models in REMOTE_CODE_MODELS


def prompt_as_text(prompt: list[Message], mode: str) -> str:
    if mode == "last_user":
        users = [m["content"] for m in prompt if m["role"] == "user"]
        if users:
            return users[-1]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)


class EmbeddingReward(Reward):
    """Cosine similarity of prompt and response embeddings, in [-1, 1] (default all-MiniLM-L6-v2, offline)."""

    Config = EmbeddingConfig

    def __init__(self, config=None):
        super().__init__(config)
        from sentence_transformers import SentenceTransformer

        from realm_cli import models

        c = self.config
        with models.loading(c.model):
            self.model = SentenceTransformer(models.local_path(c.model), device=c.device,
                                             trust_remote_code=c.trust_remote_code or c.model in REMOTE_CODE_MODELS)
        self.model.eval()

    def score_batch(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> ScoreBatch:
        import torch
        from sentence_transformers.util import pairwise_cos_sim

        prompt_texts = [prompt_as_text(p, self.config.prompt_text) for p in prompts]
        unique = list(dict.fromkeys(prompt_texts))  # K responses per prompt: embed each prompt once
        with torch.inference_mode():
            encoded = self.model.encode(unique + list(responses), batch_size=self.config.batch_size,
                                        convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
        index = {t: i for i, t in enumerate(unique)}
        prompt_vecs = encoded[[index[t] for t in prompt_texts]]
        sims = pairwise_cos_sim(prompt_vecs, encoded[len(unique):])
        return ScoreBatch([float(s) for s in sims.float().cpu()])
