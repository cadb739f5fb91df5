"""``realm align --algo dpo``: on-policy, reward-ranked (iterative) DPO, or offline DPO with ``--reward none``.

Each round samples ``k`` responses per prompt from the current policy, scores them with the reward, and takes the
best and the worst as (chosen, rejected); prompts the reward cannot separate (fewer than two scored samples, or a
spread of at most ``min_margin``) are skipped and counted. The pairs then go through one TRL DPOTrainer pass.
The DPO reference: with full fine-tuning the starting policy in every round (KL to the base); with LoRA, TRL copies
the current adapter as a frozen "ref" adapter, so it is the policy at the start of each round (iterative DPO).
With no reward, the preference pairs come straight from the data block (offline DPO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from realm_cli.align import shards
from realm_cli.align.job import AlignJob, AlignOptions
from realm_cli.errors import RealmError


@dataclass
class DpoOptions(AlignOptions):
    beta: float = 0.1
    loss_type: str = "sigmoid"  # any TRL DPO loss_type ("sigmoid", "ipo", "hinge", ...)
    min_margin: float = 0.0  # best - worst must exceed this for a prompt to become a pair
    max_length: int = 512  # prompt + response tokens in the DPO pass

    def __post_init__(self):
        super().__post_init__()
        if self.k < 2:
            raise ValueError("k must be at least 2 for dpo (it pairs the best and the worst of k samples)")


class DpoAligner(AlignJob):
    Config = DpoOptions
    needs_reward = False  # offline DPO on the data block's pairs

    def train_round(self, round_index, prompts):
        if self.reward is None:
            pairs = self._offline_pairs(round_index)
            stats = {"pairs": len(pairs)}
        else:
            pairs, stats = self._ranked_pairs(prompts)
        if not pairs:
            self.warn(f"round {round_index + 1}: no preference pairs; the policy is unchanged")
            return stats
        losses = self._dpo(pairs, round_index)
        return {**stats, "dpo_loss_first": losses[0] if losses else math.nan,
                "dpo_loss_last": losses[-1] if losses else math.nan}

    def _ranked_pairs(self, prompts):
        samples, scores = self.sample_and_score(prompts, self.config.k)
        groups: dict[int, list[tuple[float, str]]] = {}
        for i, text, value in zip(samples.prompt_index, samples.texts, scores.values):
            if math.isfinite(value):
                groups.setdefault(i, []).append((value, text))
        pairs, ties = [], 0
        for i in range(len(prompts)):
            ranked = sorted(groups.get(i, []), key=lambda t: t[0])
            if len(ranked) < 2 or ranked[-1][0] - ranked[0][0] <= self.config.min_margin or \
                    ranked[-1][1] == ranked[0][1]:
                ties += 1
                continue
            pairs.append((prompts[i], ranked[-1][1], ranked[0][1]))
        self.skipped["inseparable_prompts"] = self.skipped.get("inseparable_prompts", 0) + ties
        finite = [v for v in scores.values if math.isfinite(v)]
        kl = self.kl_to_reference(samples)
        length = sum(map(len, samples.response_ids)) / len(samples.response_ids)
        self.log(reward=sum(finite) / len(finite), kl=kl, length=length)
        return pairs, {"reward": sum(finite) / len(finite), "kl": kl, "pairs": len(pairs), "inseparable": ties,
                       "unscored": scores.failed}

    def _offline_pairs(self, round_index):
        pool = [(r.prompt, r.chosen, r.rejected) for r in self.records if r.chosen and r.rejected]
        if not pool:
            raise RealmError(f"recipe {self.recipe.name!r}: offline dpo (--reward none) needs preference pairs "
                             f"in data.train")
        n = min(self.config.prompts_per_round, len(pool))
        start = (round_index * n) % len(pool)
        return [pool[(start + i) % len(pool)] for i in range(n)]

    def _dpo(self, pairs, round_index) -> list[float]:
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        data = Dataset.from_list([{"prompt": p, "chosen": [{"role": "assistant", "content": c}],
                                   "rejected": [{"role": "assistant", "content": r}]} for p, c, r in pairs])
        args = self.trl_args(DPOConfig, f"dpo-round-{round_index + 1}", beta=self.config.beta,
                             loss_type=[self.config.loss_type], max_length=self.config.max_length)
        self.phase(f"DPO on {len(pairs)} preference pairs, {self.config.epochs} epoch(s)" + self._shared_out())
        callback, logs = self.trl_logs()
        self.drop_trl_reference_adapter()  # TRL adds it again as a copy of the current adapter
        # Under ZeRO-3 a full fine-tune's reference is TRL's own: it loads the base again and partitions it in an
        # inference engine (realm's copy stays whole, for the KL it measures between rounds).
        zero3 = getattr(args.deepspeed_plugin, "zero_stage", None) == 3
        with shards.full_weights(self.model):  # TRL copies the adapter from whole weights, not from shards
            trainer = DPOTrainer(model=self.model, ref_model=None if zero3 else self.reference.copy, args=args,
                                 train_dataset=data, processing_class=self.tokenizer, callbacks=[callback])
        self.quiet(trainer)
        trainer.train()
        self.released(trainer)
        self.model = trainer.model if not hasattr(trainer.model, "module") else trainer.model.module
        return [entry["loss"] for entry in logs if "loss" in entry]
