"""``realm align --algo grpo``: TRL's GRPOTrainer with the reward plugin as its reward function.

Each round is one GRPOTrainer pass over that round's prompts (``k`` completions per prompt form a group). A sample
the reward cannot score is handed to TRL as ``None``: TRL then leaves it out of the group baseline and gives it no
advantage; realm counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from realm_cli.align import shards
from realm_cli.align.job import AlignJob, AlignOptions


@dataclass
class GrpoOptions(AlignOptions):
    beta: float = 0.04  # KL coefficient to the reference (TRL computes and logs the KL when > 0)
    num_iterations: int = 1
    loss_type: str = "dapo"
    scale_rewards: str = "group"

    def __post_init__(self):
        super().__post_init__()
        if self.k < 2:
            raise ValueError("k must be at least 2 (group-relative advantages need a group)")


class GrpoAligner(AlignJob):
    Config = GrpoOptions
    trl_trainer = "GRPOTrainer"
    trl_config = "GRPOConfig"

    def extra_trl_args(self) -> dict:
        return {"beta": self.config.beta, "num_iterations": self.config.num_iterations,
                "loss_type": self.config.loss_type, "scale_rewards": self.config.scale_rewards}

    def train_round(self, round_index, prompts):
        import trl
        from datasets import Dataset

        cfg = self.config
        # TRL needs the generation batch (train_batch_size x accumulation) to hold whole groups of k completions
        per_device = max(cfg.k, (cfg.train_batch_size // cfg.k) * cfg.k)
        args = self.trl_args(getattr(trl, self.trl_config), f"{self.recipe.trainer.name}-round-{round_index + 1}",
                             num_generations=cfg.k, max_completion_length=cfg.max_new_tokens,
                             temperature=cfg.temperature, top_p=cfg.top_p, top_k=0, log_completions=False,
                             per_device_train_batch_size=per_device, **self.extra_trl_args())
        self.phase(f"{self.recipe.trainer.name.upper()} on {len(prompts)} prompts, {cfg.k} completions each, "
                   f"sampled and scored inside TRL" + self._shared_out())
        callback, logs = self.trl_logs()
        self.drop_trl_reference_adapter()
        unscored = self.skipped["unscored_samples"]
        with shards.full_weights(self.model):  # TRL copies the adapter from whole weights, not from shards
            trainer = getattr(trl, self.trl_trainer)(
                model=self.model, reward_funcs=[self.reward_function()], args=args,
                train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), processing_class=self.tokenizer,
                callbacks=[callback])
        self.quiet(trainer)
        trainer.train()  # under ZeRO-3 TRL gathers the policy for generate() (unwrap_model_for_generation)
        self.released(trainer)
        # each rank scored its own completions: the round's unscored count is the sum over ranks
        self.skipped["unscored_samples"] = unscored + int(shards.all_sum(self.skipped["unscored_samples"] - unscored))
        rows = [entry for entry in logs if "reward" in entry]
        for entry in rows:
            self.log(reward=float(entry["reward"]), kl=float(entry.get("kl", float("nan"))),
                     length=float(entry.get("completions/mean_length", float("nan"))))
        mean = lambda key: sum(float(e.get(key, float("nan"))) for e in rows) / max(len(rows), 1)  # noqa: E731
        return {"reward": mean("reward"), "kl": mean("kl"), "length": mean("completions/mean_length"),
                "steps": len(rows), "unscored": self.skipped["unscored_samples"]}

    def reward_function(self):
        """The reward plugin as TRL's ``f(prompts=, completions=, **kw) -> list[float | None]``."""
        from realm_cli.rewards import safe as align_scoring

        job = self

        def reward(prompts, completions, **kwargs):
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            chats = [p if isinstance(p, list) else [{"role": "user", "content": p}] for p in prompts]
            scores = align_scoring.score(job.reward, chats, texts, batch_size=job.config.score_batch_size,
                                         what=f"reward {job.reward_name!r}")
            job.skipped["unscored_samples"] += scores.failed
            return [v if ok else None for v, ok in zip(scores.values, scores.ok)]

        reward.__name__ = self.reward_name
        return reward


@dataclass
class RlooOptions(GrpoOptions):
    beta: float = 0.05  # RLOO folds the KL to the reference into the reward


class RlooAligner(GrpoAligner):
    """RLOO: TRL's RLOOTrainer (REINFORCE with a leave-one-out baseline over ``k`` samples), the reward wrapped as for
    GRPO."""

    Config = RlooOptions
    trl_trainer = "RLOOTrainer"
    trl_config = "RLOOConfig"

    def extra_trl_args(self) -> dict:
        return {"beta": self.config.beta, "num_iterations": self.config.num_iterations}
