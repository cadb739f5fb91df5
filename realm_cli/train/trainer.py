"""TRL's RewardTrainer as ``train-rm`` runs it: its arguments, a subclass that keeps the length column and records
the rewards it sees, and the progress line."""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from pathlib import Path

from rich.console import Console

from realm_cli import tracking
from realm_cli.train.preflight import uses_master_weights

console = Console(stderr=True)
REWARD_WINDOW = 4096  # rewards kept for the "seen in training" mean/std


def training_arguments(cfg, recipe, checkpoints: Path, precision: str, device: str, steps_hint: int) -> dict:
    """RewardConfig keyword arguments (pure: tested without building a trainer). On GPUs the DeepSpeed JSON also
    goes to TrainingArguments (``deepspeed=``): then ZeRO-3's ``from_pretrained`` loads the weights already
    partitioned (HF's zero.Init). On CPU processes it is left to the launcher (``accelerate launch
    --deepspeed_config_file``, which HF Trainer reads from accelerate's DeepSpeed plugin): with ``deepspeed=`` HF's
    CPU device set-up counts a world of one and DeepSpeed's batch-size check fails. With master weights the model
    itself is bf16, so HF's autocast stays off (it would only re-run softmax and layer norm in fp32). The process
    group's own settings come from ``distributed.trainer_kwargs``, merged over these."""
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
        **tracking.training_kwargs(cfg, checkpoints.parent, recipe.name or "train-rm"),
        disable_tqdm=True,
        dataloader_num_workers=0,
        save_only_model=False,
    )
    if recipe.launch.deepspeed_config is not None and device.startswith("cuda"):
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
            self.progress.update(self.task, completed=state.global_step, total=state.max_steps, stats=stats)

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


def layout_callback(trainer):
    """Records (``.info``) and prints how the run is distributed, once the trainer has wrapped the model (the
    DeepSpeed engine or FSDP2 exists only then): a sharding request that silently ran unsharded shows here."""
    from transformers import TrainerCallback

    from realm_cli import distributed

    class Layout(TrainerCallback):
        def __init__(self):
            self.info: dict = {}

        def on_train_begin(self, args, state, control, **kw):
            self.info = distributed.describe(trainer)  # every rank: it gathers each rank's share
            distributed.check_layout(self.info)  # every rank alike: all stop, none waits on a collective
            if state.is_world_process_zero and self.info["world_size"] > 1:
                console.print(distributed.summary_line(self.info), highlight=False)

    return Layout()


KERNEL_STEPS = 2  # optimizer steps not timed by the time budget (first-call kernel set-up, allocator growth)
PROBE_STEPS = 5  # optimizer steps timed to plan the run


def rescale_schedule(scheduler, total: int, warmup: int) -> bool:
    """Point HF's LambdaLR schedules (linear, cosine, ... built as ``partial(..., num_warmup_steps=,
    num_training_steps=)``) at a new total and warmup, and set the optimizer's current learning rate to match.
    False where the schedule has no such lambda (nothing to rescale)."""
    sched = getattr(scheduler, "scheduler", scheduler)  # accelerate's wrapper
    lambdas = getattr(sched, "lr_lambdas", None)
    if not lambdas:
        return False
    changed, new = False, []
    for fn in lambdas:
        keys = getattr(fn, "keywords", None) or {}
        if isinstance(fn, functools.partial) and ({"num_training_steps", "num_warmup_steps"} & set(keys)):
            kw = dict(keys)
            if "num_training_steps" in kw:
                kw["num_training_steps"] = total
            if "num_warmup_steps" in kw:
                kw["num_warmup_steps"] = warmup
            fn, changed = functools.partial(fn.func, *fn.args, **kw), True
        new.append(fn)
    sched.lr_lambdas = new
    lrs = [base * fn(sched.last_epoch) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]
    for group, lr in zip(sched.optimizer.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = lrs
    return changed


REPLAN_AT = (0.25, 0.5, 0.75)  # shares of the current plan at which the step count is planned again


def time_budget_callback(max_minutes: float, kernel_steps: int = KERNEL_STEPS, probe_steps: int = PROBE_STEPS,
                         replan_at: tuple[float, ...] = REPLAN_AT):
    """``trainer.max_minutes``: after ``kernel_steps`` untimed steps, time ``probe_steps`` more, then set the run's
    step count so that the whole training loop fits the budget, and stretch or shrink the learning-rate schedule
    (warmup kept proportional) to end on that step: the LR reaches its end value when the budget does, rather than
    the run being cut mid-schedule. The epoch count becomes an upper bound (never more steps than it gives).

    The probe alone misjudges: HF's length-grouped sampler sorts each mega-batch (50 batches) longest first, so the
    probed steps are among the slowest of the run (measured on the demo: planned 2.80 s/step, ran 1.74 s/step, 3.5 of
    5.5 minutes used). So the plan is made again when each share of ``replan_at`` of the current plan is done, from
    the mean step since the probe began (by the later re-plans a whole mega-batch and more; the mean since the probe
    ended was measured worse: on the demo the first re-plan then saw only the short tail of the first mega-batch,
    1.28 s/step against 1.6 overall. Evaluation and checkpoints during training are in the mean, as they spend the
    same budget). A finished warmup is not restarted."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self):
            self.trainer = None
            self.plan: dict | None = None
            self.t0 = self.t_probe = 0.0
            self.start_step = 0
            self.shares = list(replan_at)

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()
            self.start_step = state.global_step

        def _set_steps(self, args, state, planned: int) -> None:
            warmup = args.get_warmup_steps(state.max_steps)
            if state.global_step >= warmup:
                warmup = min(warmup, args.get_warmup_steps(planned))
            else:
                warmup = args.get_warmup_steps(planned)
            state.max_steps = planned
            if self.trainer is not None and self.trainer.lr_scheduler is not None:
                rescale_schedule(self.trainer.lr_scheduler, planned, warmup)

        def _planned(self, args, state, per_step: float, now: float) -> tuple[int, float]:
            per_step, elapsed = _slowest_rank(args, per_step, now - self.t0)
            left = max_minutes * 60 - elapsed
            ceiling = self.plan["steps_without_budget"] if self.plan else state.max_steps
            return min(ceiling, state.global_step + max(0, math.floor(left / per_step))), per_step

        def on_step_end(self, args, state, control, **kw):
            done = state.global_step - self.start_step
            now = time.perf_counter()
            if done == kernel_steps:
                self.t_probe = now
            if self.plan is None and done == kernel_steps + probe_steps:
                steps_without_budget = state.max_steps
                planned, per_step = self._planned(args, state, (now - self.t_probe) / probe_steps, now)
                self.plan = {"max_minutes": max_minutes, "seconds_per_step": round(per_step, 4),
                             "probe_steps": probe_steps, "untimed_steps": kernel_steps,
                             "steps_without_budget": steps_without_budget, "first_plan": planned,
                             "planned_steps": planned, "replans": []}
                if planned != state.max_steps:
                    self._set_steps(args, state, planned)
            elif self.plan is not None and self.shares and state.global_step < state.max_steps and \
                    done >= self.shares[0] * (state.max_steps - self.start_step):
                self.shares.pop(0)
                timed = done - kernel_steps
                planned, per_step = self._planned(args, state, (now - self.t_probe) / timed, now)
                planned = max(planned, state.global_step + 1)
                self.plan["replans"].append({"at_step": state.global_step, "seconds_per_step": round(per_step, 4),
                                             "planned_steps": planned})
                self.plan["planned_steps"] = planned
                if planned != state.max_steps:
                    self._set_steps(args, state, planned)
            if self.plan is not None and state.global_step >= state.max_steps:
                control.should_training_stop = True
                control.should_log = True  # the last step's loss and (end-of-schedule) learning rate
                if args.save_strategy == "steps":
                    control.should_save = True

    return TimeBudget()


def _slowest_rank(args, per_step: float, elapsed: float) -> tuple[float, float]:
    """Every process must plan the same step count (or the collectives would hang): plan for the slowest."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return per_step, elapsed
    t = torch.tensor([per_step, elapsed], dtype=torch.float64, device=args.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t[0]), float(t[1])
