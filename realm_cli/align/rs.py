"""``realm align --algo rs``: rejection sampling / RAFT / best-of-n fine-tuning.

Each round samples ``k`` responses per prompt, keeps the ``top_m`` best by reward (only scored samples compete, and
only those above ``min_reward`` when set), and fine-tunes on them with TRL's SFTTrainer (loss on the response only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from realm_cli.align.job import AlignJob, AlignOptions


@dataclass
class RsOptions(AlignOptions):
    top_m: int = 1
    min_reward: float | None = None
    max_length: int = 512

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.top_m <= self.k:
            raise ValueError(f"top_m must be between 1 and k ({self.k})")


class RsAligner(AlignJob):
    Config = RsOptions

    def train_round(self, round_index, prompts):
        samples, scores = self.sample_and_score(prompts, self.config.k)
        groups: dict[int, list[tuple[float, str]]] = {}
        for i, text, value in zip(samples.prompt_index, samples.texts, scores.values):
            if math.isfinite(value) and text and (self.config.min_reward is None or value >= self.config.min_reward):
                groups.setdefault(i, []).append((value, text))
        kept = [(prompts[i], text, value) for i, group in groups.items()
                for value, text in sorted(group, reverse=True)[: self.config.top_m]]
        finite = [v for v in scores.values if math.isfinite(v)]
        kl = self.kl_to_reference(samples)
        length = sum(map(len, samples.response_ids)) / len(samples.response_ids)
        self.log(reward=sum(finite) / len(finite), kl=kl, length=length)
        summary = {"reward": sum(finite) / len(finite), "kept_reward": math.nan, "kl": kl, "kept": len(kept),
                   "unscored": scores.failed}
        if not kept:
            self.warn(f"round {round_index + 1}: no sample passed the filter; the policy is unchanged")
            return summary
        summary["kept_reward"] = sum(v for _, _, v in kept) / len(kept)
        losses = self._sft(kept, round_index)
        return {**summary, "sft_loss_first": losses[0] if losses else math.nan,
                "sft_loss_last": losses[-1] if losses else math.nan}

    def _sft(self, kept, round_index) -> list[float]:
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        data = Dataset.from_list([{"prompt": p, "completion": [{"role": "assistant", "content": t}]}
                                  for p, t, _ in kept])
        args = self.trl_args(SFTConfig, f"sft-round-{round_index + 1}", max_length=self.config.max_length,
                             completion_only_loss=True)
        callback, logs = self.trl_logs()
        trainer = SFTTrainer(model=self.model, args=args, train_dataset=data, processing_class=self.tokenizer,
                             callbacks=[callback])
        self.quiet(trainer)
        trainer.train()
        self.released(trainer)
        return [entry["loss"] for entry in logs if "loss" in entry]
