"""The ``bt`` trainer: a Bradley-Terry reward model (``realm train-rm``) on TRL's RewardTrainer.

Light on purpose: the training code (torch, trl, peft) lives in ``realm_cli.train`` (``bt`` the job; ``preflight``,
``loading``, ``trainer``, ``metrics``, ``plots`` its parts) and is imported in ``run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Trainer
from realm_cli.tracking import TrackingOptions


@dataclass
class Config(TrackingOptions):
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    # Training time budget in minutes: the first steps are timed and the run (and its LR schedule, warmup kept
    # proportional) planned to end when the budget does; epochs/max_steps are then an upper bound.
    max_minutes: float | None = None
    per_device_batch_size: int = 8  # pairs per device per step (chosen + rejected = 2x rows in one forward)
    gradient_accumulation_steps: int = 1
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    center_rewards_coefficient: float | None = None  # TRL's mean((r_c + r_r)^2) penalty; 0.01 is the usual value
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 where the hardware is fast at it
    group_by_length: bool = True  # batches of similar length: far less padding
    disable_dropout: bool = True
    save_steps: int = 200  # checkpoint every N optimizer steps (for --resume)
    save_total_limit: int | None = 2
    logging_steps: int = 10
    eval_steps: int | None = None  # evaluate the validation sets every N steps (always at the end)
    eval_batch_size: int = 32
    merge: bool = False  # LoRA: also write a plain merged model to OUTPUT/merged
    num_threads: int | None = None  # CPU threads per process; default: the cores divided among the processes

    def __post_init__(self):
        super().__post_init__()
        for name in ("learning_rate", "epochs", "per_device_batch_size", "gradient_accumulation_steps",
                     "save_steps", "logging_steps", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError("max_steps must be positive")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError("max_minutes must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("warmup_ratio must be in [0, 1)")


class BTTrainer(Trainer):
    """Bradley-Terry reward model: loss -logsigmoid(r_chosen - r_rejected - margin), full or LoRA."""

    Config = Config
    commands = ("train-rm",)

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from realm_cli.train import bt as train_bt

        return train_bt.train(self.recipe, self.config, Path(output_dir), resume=resume)


@hookimpl
def register_trainers(register):
    register("bt", BTTrainer, description="Bradley-Terry reward model (TRL RewardTrainer; full, LoRA or QLoRA)")
