"""TRL's RewardTrainer as ``train-rm`` runs it: its arguments, a subclass that keeps the length column and records
the rewards it sees, and the progress line."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from rich.console import Console

from realm_cli.train.preflight import uses_master_weights

console = Console(stderr=True)
REWARD_WINDOW = 4096  # rewards kept for the "seen in training" mean/std


def training_arguments(cfg, recipe, checkpoints: Path, precision: str, device: str, steps_hint: int) -> dict:
    """RewardConfig keyword arguments (pure: tested without building a trainer). Under accelerate + DeepSpeed the
    JSON must also reach TrainingArguments (``deepspeed=``) or HF Trainer would ignore it. With master weights the
    model itself is bf16, so HF's autocast stays off (it would only re-run softmax and layer norm in fp32)."""
    from realm_cli.recipes.launch import config_path

    kw = dict(
        output_dir=str(checkpoints),
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # below 1: a fraction of the total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        center_rewards_coefficient=cfg.center_rewards_coefficient,
        disable_dropout=cfg.disable_dropout,
        bf16=precision == "bf16" and not uses_master_weights(recipe, precision, device),
        fp16=precision == "fp16",
        use_cpu=not device.startswith("cuda"),
        # TRL turns checkpointing on by default (a third more compute); realm only when the recipe asks.
        activation_checkpointing=recipe.model.gradient_checkpointing,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_strategy="steps",
        logging_steps=min(cfg.logging_steps, max(1, steps_hint)),
        eval_strategy="steps" if cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps,
        # The pairs arrive already fitted to max_length: TRL's filter would only drop, never truncate (trl#2488).
        max_length=None,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length",
        seed=recipe.seed,
        data_seed=recipe.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        save_only_model=False,
    )
    if recipe.launch.deepspeed_config is not None:
        kw["deepspeed"] = str(config_path("deepspeed_configs", recipe.launch.deepspeed_config, ".json"))
    if recipe.model.gradient_checkpointing:
        kw["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    return kw


def reward_trainer_class():
    import torch
    from trl import RewardTrainer

    class BTRewardTrainer(RewardTrainer):
        """RewardTrainer that keeps the sampler's ``length`` column and records the rewards it sees."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen_rewards: deque[float] = deque(maxlen=REWARD_WINDOW)
            self.running = {"loss": None, "accuracy": None}

        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "length"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs.pop("length", None)
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
            if model.training:
                with torch.no_grad():
                    rewards = outputs.logits.detach().float().view(-1)
                    self.seen_rewards.extend(rewards.tolist())
                    chosen, rejected = rewards.chunk(2)
                    acc = (chosen > rejected).float().mean().item()
                    for key, value in (("loss", loss.item()), ("accuracy", acc)):
                        old = self.running[key]
                        self.running[key] = value if old is None else 0.9 * old + 0.1 * value
            return (loss, outputs) if return_outputs else loss

    return BTRewardTrainer


def progress_callback(total_pairs_per_step: int):
    """realm's own progress line rather than TRL's ``trl.trainer.callbacks.RichProgressCallback``, which does not
    fit: it draws a rich ``Live`` panel on a stdout console of its own, and when output is not a terminal rich
    prints that panel once, at the end, so a redirected log (CI, nohup) gets no progress at all, where realm prints
    one plain line per logging step on stderr; it also shows no pairs/s, and no ETA."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        """Steps, loss, accuracy, pairs/s and ETA on one rich line (HF's tqdm is off)."""

        def __init__(self):
            self.trainer = None
            self.progress = None
            self.start_step = 0
            self.t0 = 0.0

        def rate(self, state) -> float:
            return (state.global_step - self.start_step) * total_pairs_per_step / max(
                time.perf_counter() - self.t0, 1e-9)

        def on_train_begin(self, args, state, control, **kw):
            if not state.is_world_process_zero:
                return
            self.progress = Progress(TextColumn("[bold]train-rm"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                                     TimeRemainingColumn(), console=console, transient=False)
            self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step,
                                               stats="")
            self.start_step = state.global_step
            self.t0 = time.perf_counter()
            self.progress.start()

        def on_step_end(self, args, state, control, **kw):
            if self.progress is None:
                return
            run = self.trainer.running if self.trainer is not None else {}
            stats = (f"loss {run['loss']:.4f} acc {run['accuracy']:.3f} " if run.get("loss") is not None else "") \
                + f"{self.rate(state):.1f} pairs/s"
            self.progress.update(self.task, completed=state.global_step, stats=stats)

        def on_log(self, args, state, control, logs=None, **kw):
            # Redirected output (CI, nohup) gets no live bar: one plain line per logging step instead.
            if self.progress is not None and not console.is_terminal and logs and "loss" in logs:
                console.print(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
                              f"acc {logs.get('accuracy', float('nan')):.3f} {self.rate(state):.1f} pairs/s",
                              highlight=False)

        def on_train_end(self, args, state, control, **kw):
            if self.progress is not None:
                self.progress.stop()

    return RichProgress()
