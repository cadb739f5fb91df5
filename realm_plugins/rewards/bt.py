"""The ``bt`` reward: any single-logit reward model (a realm ``train-rm`` output directory, a LoRA one, or a hub
id such as OpenAssistant's DeBERTa RMs) scoring (prompt, response) pairs exactly as realm trained it: the same
format, and over-long inputs cut by the same policy (``RMFormat.fit``, ``realm_cli.data.length``) to the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from realm_cli.contracts import Message
from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Reward, ScoreBatch


@dataclass
class Config:
    model: str  # a train-rm output directory, a model alias, or a hub id
    batch_size: int = 32
    max_length: int | None = None  # default: what the RM was trained with (realm_rm.json), else the model's limit
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 where the hardware is fast at it
    normalize: bool = False  # (score - mean) / std with the reward mean/std recorded during training
    device: str | None = None  # default: cuda when available
    trust_remote_code: bool = False

    def __post_init__(self):
        if self.batch_size <= 0:
            raise ValueError("batch_size must be positive")


class BTReward(Reward):
    """Scores from a Bradley-Terry reward model: batched, length-sorted, no grad, bf16 where fast."""

    Config = Config

    def __init__(self, config: Config):
        super().__init__(config)
        self._rm = None

    @property
    def rm(self):
        if self._rm is None:
            import torch

            from realm_cli.rewards import rm as reward_model

            device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._rm = reward_model.load(self.config.model, device=device, max_length=self.config.max_length,
                                         trust_remote_code=self.config.trust_remote_code,
                                         dtype=reward_model.scoring_dtype(self.config.precision, device))
            info = self._rm.info
            if self.config.normalize and (info is None or not info.reward_std):
                from realm_cli.errors import RealmError

                raise RealmError(f"bt reward {self.config.model!r}: normalize=true needs the reward mean/std a "
                                 f"realm-trained RM records in realm_rm.json; this model has none")
        return self._rm

    def score_batch(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> ScoreBatch:
        from realm_cli.rewards import rm as reward_model

        rm = self.rm
        scores = reward_model.score(rm, prompts, responses, batch_size=self.config.batch_size,
                                    precision=self.config.precision)
        if self.config.normalize:
            scores = [(s - rm.info.reward_mean) / rm.info.reward_std for s in scores]
        return ScoreBatch(scores)

    def close(self) -> None:
        self._rm = None


@hookimpl
def register_rewards(register):
    register("bt", BTReward, description="Bradley-Terry reward model (realm train-rm output or hub RM)")
