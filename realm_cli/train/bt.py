"""Bradley-Terry reward-model training on TRL's RewardTrainer, extended where it falls short.

What TRL 1.16's RewardTrainer already does and realm keeps: the loss -logsigmoid(r_c - r_r - margin), the optional
center_rewards_coefficient term, chosen and rejected in one forward pass (its collator stacks them), PEFT wrapping,
HF Trainer's checkpointing/resume, accumulation, mixed precision, DeepSpeed. What realm adds:
- no pair dropped for length: pairs are fitted (oldest context, then response tail) by ``realm_cli.data.load`` with
  counts reported, and handed to TRL pre-tokenized with its length filter off (TRL drops them, trl#2488);
- length-grouped batches (HF's LengthGroupedSampler over a precomputed ``length`` column) so little is padding;
- the score head always saved with a LoRA adapter (trl#1379), a plain merged model on request;
- rich progress, per-validation-set score statistics, reward mean/std for normalisation, a PNG of the run;
- every user mistake (model, tokenizer, pad token, hardware) reported before data or weights are touched.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import deque
from pathlib import Path

from rich.console import Console

from realm_cli.rewards import rm as rmlib
from realm_cli.errors import RealmError
from realm_cli import distributed
from realm_cli.evaluate.stats import mean_std

console = Console(stderr=True)
REWARD_WINDOW = 4096  # rewards kept for the "seen in training" mean/std


def resolve_precision(precision: str, device: str) -> str:
    """auto -> bf16 where the hardware is fast at it, fp16 on older GPUs, else fp32. fp16 needs a GPU."""
    from realm_cli.models import bf16_supported

    if precision == "auto":
        if bf16_supported(device):
            return "bf16"
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and not device.startswith("cuda"):
        raise RealmError("trainer.precision=fp16 needs a CUDA GPU (loss scaling is a GPU feature); "
                         "use precision=bf16 or auto on CPU")
    if precision == "bf16" and device.startswith("cuda") and not bf16_supported(device):
        raise RealmError("trainer.precision=bf16: this GPU does not support bf16; use fp16")
    return precision


def last_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint (trainer_state.json is written last, so a kill mid-save leaves none)."""
    done = [p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def preflight(recipe, cfg, device: str) -> None:
    """Reject what cannot work on this machine before any model or data is loaded."""
    if recipe.model is None:
        raise RealmError(f"recipe {recipe.name!r}: model: required for train-rm")
    if recipe.data is None or not recipe.data.train:
        raise RealmError(f"recipe {recipe.name!r}: data.train: at least one dataset required for train-rm")
    from realm_cli.recipes.launch import accelerate_settings

    if not device.startswith("cuda") and not accelerate_settings(recipe.launch).get("use_cpu", False):
        raise RealmError(f"recipe {recipe.name!r} targets a GPU (launch.accelerate_config="
                         f"{recipe.launch.accelerate_config}) and this machine has none; run a cpu recipe "
                         f"(cpu-minilm, cpu-smollm2-lora) or set launch.accelerate_config=cpu")
    lora = recipe.model.lora
    if lora is not None and lora.quantization != "none":
        if not device.startswith("cuda"):
            raise RealmError(f"model.lora.quantization={lora.quantization} (QLoRA) needs a CUDA GPU; "
                             f"this machine has none (set model.lora.quantization=none)")
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise RealmError("model.lora.quantization needs bitsandbytes: pip install bitsandbytes")
    if recipe.launch.deepspeed_config is not None:
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise RealmError("launch.deepspeed_config needs DeepSpeed: pip install 'realm-cli[deepspeed]'")


def load_tokenizer_and_config(model_cfg):
    """The tokenizer (with a usable pad token) and the model's config: enough to fit and encode the data before any
    weights are loaded."""
    from transformers import AutoConfig

    from realm_cli import models

    path = models.local_path(model_cfg.name)
    tokenizer = rmlib.load_tokenizer(path, model_cfg.name, model_cfg.trust_remote_code, model_cfg.revision)
    with models.loading(model_cfg.name):
        config = AutoConfig.from_pretrained(path, trust_remote_code=model_cfg.trust_remote_code,
                                            revision=model_cfg.revision)
    rmlib.ensure_pad_token(tokenizer, name=model_cfg.name)
    return tokenizer, config


def uses_master_weights(recipe, precision: str, device: str) -> bool:
    """bf16 on a CPU, full fine-tuning, default dtype: train bf16 weights with fp32 master copies in the optimizer
    (``realm_cli.train.master_weights``) instead of autocast over fp32 weights. LoRA keeps autocast: its trainable
    adapters are small and already fp32."""
    return (precision == "bf16" and not device.startswith("cuda") and recipe.model.lora is None
            and recipe.model.dtype == "auto" and recipe.launch.deepspeed_config is None)


def load_model(model_cfg, tokenizer, precision: str, master_weights: bool = False):
    """The base model as a single-logit sequence classifier. Called after TrainingArguments exist, so that under
    ZeRO-3 ``from_pretrained`` loads the weights already partitioned (HF's deepspeed.zero.Init hook). With master
    weights the model is loaded in bf16 with eager attention: with bf16 weights eager's backward beats SDPA's on a
    CPU (measured 1.3x per MiniLM step over SDPA + autocast), while under autocast it is the slower one."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from realm_cli import models

    path = models.local_path(model_cfg.name)
    dtype = {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16,
             "float16": torch.float16}[model_cfg.dtype]
    kwargs = {}
    if master_weights:
        dtype, kwargs["attn_implementation"] = torch.bfloat16, "eager"
    lora = model_cfg.lora
    if lora is not None and lora.quantization != "none":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if precision == "bf16" else torch.float16
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                               bnb_4bit_use_double_quant=True)
            if lora.quantization == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
    # A fresh score head is the point of training; transformers' "newly initialized" load report would only alarm.
    with models.loading(model_cfg.name), rmlib.fresh_head_expected():
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=dtype, trust_remote_code=model_cfg.trust_remote_code,
            revision=model_cfg.revision, **kwargs)
    rmlib.ensure_pad_token(tokenizer, model, model_cfg.name)
    if master_weights:  # the BT loss (and TRL's accuracy/centering) in fp32, not on bf16-rounded rewards
        model.register_forward_hook(_float_logits)
    return model


def _float_logits(module, args, output):
    output.logits = output.logits.float()
    return output


def peft_config(model, lora):
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.SEQ_CLS, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules if isinstance(lora.target_modules, list)
                      else ([m.strip() for m in lora.target_modules.split(",")]
                            if lora.target_modules != "all-linear" else "all-linear"),
                      modules_to_save=rmlib.head_modules(model))


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


def encode_pairs(records, fmt: rmlib.RMFormat) -> tuple[dict, int]:
    """Columns for TRL (chosen_ids, rejected_ids, optional margin) plus ``length`` for the length-grouped sampler."""
    cols = {"chosen_ids": [], "rejected_ids": [], "length": []}
    with_margin = any(r.margin is not None for r in records)
    if with_margin:
        cols["margin"] = []
    cut = 0
    for r in records:
        c, c_cut = fmt.encode(r.prompt, r.chosen)
        j, j_cut = fmt.encode(r.prompt, r.rejected)
        cut += c_cut or j_cut
        cols["chosen_ids"].append(c)
        cols["rejected_ids"].append(j)
        cols["length"].append(max(len(c), len(j)))
        if with_margin:
            cols["margin"].append(float(r.margin or 0.0))
    return cols, cut


def _reward_trainer_class():
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


def _progress_callback(total_pairs_per_step: int):
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
            rate = (state.global_step - self.start_step) * total_pairs_per_step / max(
                time.perf_counter() - self.t0, 1e-9)
            stats = (f"loss {run['loss']:.4f} acc {run['accuracy']:.3f} " if run.get("loss") is not None else "") \
                + f"{rate:.1f} pairs/s"
            self.progress.update(self.task, completed=state.global_step, stats=stats)

        def on_log(self, args, state, control, logs=None, **kw):
            # Redirected output (CI, nohup) gets no live bar: one plain line per logging step instead.
            if self.progress is not None and not console.is_terminal and logs and "loss" in logs:
                rate = (state.global_step - self.start_step) * total_pairs_per_step / max(
                    time.perf_counter() - self.t0, 1e-9)
                console.print(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
                              f"acc {logs.get('accuracy', float('nan')):.3f} {rate:.1f} pairs/s", highlight=False)

        def on_train_end(self, args, state, control, **kw):
            if self.progress is not None:
                self.progress.stop()

    return RichProgress()


def name_eval_metrics(log_history: list[dict]) -> list[dict]:
    """TRL logs every validation set's accuracy/margin as plain ``eval_accuracy``; HF names only the loss
    (``eval_<set>_loss``). Give them the set's name (in place, so the plot can tell the sets apart)."""
    out = []
    for entry in log_history:
        name = next((k[5:-5] for k in entry if k.startswith("eval_") and k.endswith("_loss")), None)
        if name is None:
            continue
        for key in ("accuracy", "margin", "mean_reward", "min_reward", "max_reward"):
            if f"eval_{key}" in entry and name:
                entry[f"eval_{name}_{key}"] = entry.pop(f"eval_{key}")
        out.append(entry)
    return out


def pair_metrics(chosen: list[float], rejected: list[float]) -> dict:
    """Strict accuracy (a tie is wrong), mean margin, score mean/std per side."""
    n = len(chosen)
    c_mean, c_std = mean_std(chosen)
    r_mean, r_std = mean_std(rejected)
    return {"pairs": n, "accuracy": sum(c > r for c, r in zip(chosen, rejected)) / n if n else float("nan"),
            "mean_margin": sum(c - r for c, r in zip(chosen, rejected)) / n if n else float("nan"),
            "chosen_mean": c_mean, "chosen_std": c_std, "rejected_mean": r_mean, "rejected_std": r_std}


def evaluate_sets(rm: rmlib.LoadedRM, validation: dict, batch_size: int) -> tuple[dict, dict]:
    """Metrics and raw scores per validation set, scored from the saved directory exactly as the bt reward does."""
    metrics, scores = {}, {}
    for name, records in validation.items():
        if not records:
            continue
        prompts = [r.prompt for r in records]
        s = rmlib.score(rm, prompts + prompts, [r.chosen for r in records] + [r.rejected for r in records],
                        batch_size=batch_size)
        chosen, rejected = s[: len(records)], s[len(records):]
        metrics[name] = pair_metrics(chosen, rejected)
        scores[name] = (chosen, rejected)
        sources = sorted({r.source for r in records})
        if len(sources) > 1:  # a held-out slice of a mixture: each source's share reported on its own too
            for source in sources:
                idx = [i for i, r in enumerate(records) if r.source == source]
                metrics[f"{name}/{source}"] = pair_metrics([chosen[i] for i in idx], [rejected[i] for i in idx])
    return metrics, scores


def print_table(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title="reward model on its validation sets")
    for col in ("set", "pairs", "accuracy", "mean margin", "chosen mean ± std", "rejected mean ± std"):
        table.add_column(col, justify="right" if col != "set" else "left")
    for name, m in metrics.items():
        table.add_row(name, str(m["pairs"]), f"{m['accuracy']:.3f}", f"{m['mean_margin']:+.3f}",
                      f"{m['chosen_mean']:+.3f} ± {m['chosen_std']:.3f}",
                      f"{m['rejected_mean']:+.3f} ± {m['rejected_std']:.3f}")
    console.print(table)


def plot(log_history: list[dict], scores: dict, path: Path) -> None:
    """Loss and accuracy curves over training, and the chosen/rejected score histograms per validation set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in log_history if "loss" in h and "step" in h]
    panels = 2 + len(scores)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4))
    axes[0].plot([h["step"] for h in train], [h["loss"] for h in train], marker=".")
    axes[0].set(title="train loss", xlabel="step")
    axes[1].plot([h["step"] for h in train], [h.get("accuracy", float("nan")) for h in train], marker=".",
                 label="train")
    for key in sorted({k for h in log_history for k in h if k.startswith("eval_") and k.endswith("_accuracy")}):
        ev = [h for h in log_history if key in h]
        axes[1].plot([h["step"] for h in ev], [h[key] for h in ev], marker="o", label=key[5:-9] or "eval")
    axes[1].set(title="pair accuracy", xlabel="step", ylim=(0, 1))
    axes[1].legend(fontsize=7)
    for ax, (name, (chosen, rejected)) in zip(axes[2:], scores.items()):
        ax.hist(chosen, bins=30, alpha=0.6, label="chosen")
        ax.hist(rejected, bins=30, alpha=0.6, label="rejected")
        ax.set(title=f"scores: {name}", xlabel="reward")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(recipe, cfg, output_dir: Path, *, resume: bool = False) -> dict:
    import torch

    from realm_cli.data import load as datalib
    from realm_cli.data.length import make_length_fitter

    device = "cuda" if torch.cuda.is_available() else "cpu"
    preflight(recipe, cfg, device)
    precision = resolve_precision(cfg.precision, device)
    checkpoints = output_dir / "checkpoints"
    resume_from = None
    if resume:
        resume_from = last_checkpoint(checkpoints)
        if resume_from is None:
            raise RealmError(f"--resume: no complete checkpoint under {checkpoints} (nothing to continue)")
    if device == "cpu":
        torch.set_num_threads(cfg.num_threads or max(1, (os.cpu_count() or 1) // distributed.world_size()))

    tokenizer, model_config = load_tokenizer_and_config(recipe.model)
    max_length = rmlib.model_max_length(model_config, tokenizer, recipe.data.max_length)
    fmt = rmlib.RMFormat(tokenizer, max_length)
    fit = make_length_fitter(fmt.count, max_length, recipe.data.overlong)
    splits = datalib.load(recipe.data, fit=fit)
    if not splits.train:
        raise RealmError(f"recipe {recipe.name!r}: the train mixture is empty after loading and length fitting")
    if distributed.is_main_process():
        console.print(splits.report)

    import datasets

    cols, cut = encode_pairs(splits.train, fmt)
    train_ds = datasets.Dataset.from_dict(cols)
    eval_ds = None
    if cfg.eval_steps and splits.validation:
        eval_ds = {name: datasets.Dataset.from_dict(encode_pairs(recs, fmt)[0])
                   for name, recs in splits.validation.items() if recs}

    from transformers.trainer_callback import PrinterCallback
    from trl import RewardConfig

    pairs_per_step = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * distributed.world_size()
    steps_hint = cfg.max_steps or math.ceil(len(train_ds) * cfg.epochs / pairs_per_step)
    args = RewardConfig(**training_arguments(cfg, recipe, checkpoints, precision, device, steps_hint))
    from transformers import set_seed

    set_seed(recipe.seed)  # the new score head is random: same seed, same head
    master = uses_master_weights(recipe, precision, device)
    model = load_model(recipe.model, tokenizer, precision, master)
    segment_ids = rmlib.attach_segment_ids(model, fmt)
    lora = recipe.model.lora
    progress = _progress_callback(pairs_per_step)
    trainer_cls = _reward_trainer_class()
    optimizer = None
    if master:
        from realm_cli.train.master_weights import MasterWeightAdamW

        optimizer = (MasterWeightAdamW, trainer_cls.get_optimizer_cls_and_kwargs(args, model)[1])
    trainer = trainer_cls(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
        peft_config=peft_config(model, lora) if lora is not None else None, callbacks=[progress],
        optimizer_cls_and_kwargs=optimizer)
    progress.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # the rich line replaces its printed log dicts
    if trainer.args.n_gpu > 1:
        raise RealmError("several GPUs are visible to one process: use a multi_gpu recipe (accelerate launch)")

    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - t0
    trained_steps = trainer.state.global_step - (int(resume_from.name.split("-")[-1]) if resume_from else 0)
    if master:
        getattr(trainer.optimizer, "optimizer", trainer.optimizer).restore(trainer.model)  # save fp32, not bf16

    output_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(output_dir))
    seen_mean, seen_std = mean_std(list(trainer.seen_rewards))
    metrics = {
        "train": {"pairs": len(train_ds), "truncated_here": cut, "steps": trainer.state.global_step,
                  "steps_this_run": trained_steps, "resumed_from": str(resume_from) if resume_from else None,
                  "epochs": trainer.state.epoch, "loss": result.training_loss, "seconds": round(train_seconds, 2),
                  "pairs_per_second": round(trained_steps * pairs_per_step / max(train_seconds, 1e-9), 2),
                  "precision": precision, "master_weights": master, "max_length": max_length, "format": fmt.format,
                  "world_size": distributed.world_size(), "lora": lora is not None},
        "data": splits.report.to_json(),
        "reward_stats": {"mean": seen_mean, "std": seen_std, "window": len(trainer.seen_rewards)},
        "eval_log": name_eval_metrics(trainer.state.log_history),
    }
    if distributed.rank() != 0:
        return metrics
    tokenizer.save_pretrained(str(output_dir))
    rmlib.RMInfo(format=fmt.format, max_length=max_length, reward_mean=seen_mean, reward_std=seen_std,
                 base_model=recipe.model.name, lora=lora is not None, segment_ids=segment_ids).save(output_dir)

    rm = rmlib.load(str(output_dir), max_length=max_length)
    if recipe.launch.deepspeed_config is None:  # ZeRO-3 shards the live weights; the reload is the only copy
        metrics["train"]["reload_max_abs_diff"] = reload_difference(trainer, rm, splits, fmt)
    if cfg.merge:
        metrics["merged"] = str(write_merged(rm, output_dir))
    val_metrics, scores = evaluate_sets(rm, splits.validation, cfg.eval_batch_size)
    metrics["validation"] = val_metrics
    if val_metrics:
        print_table(val_metrics)
    plot(trainer.state.log_history, scores, output_dir / "training.png")
    metrics["plot"] = str(output_dir / "training.png")
    return metrics


def reload_difference(trainer, rm: rmlib.LoadedRM, splits, fmt, n: int = 16) -> float:
    """Largest |score| difference between the model in memory and the saved directory reloaded, in fp32, on a few
    pairs: a LoRA RM that lost its score head (trl#1379) or a wrong pad id shows up here at once."""
    records = (next(iter(splits.validation.values()), None) or splits.train)[:n]
    seqs = [fmt.encode(r.prompt, r.chosen)[0] for r in records]
    live = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)  # no autocast
    device = next(live.parameters()).device.type
    a = rmlib.score_ids(live, seqs, rm.tokenizer.pad_token_id, device=device, precision="fp32")
    b = rmlib.score_ids(rm.model, seqs, rm.tokenizer.pad_token_id, device=rm.device, precision="fp32")
    return max(abs(x - y) for x, y in zip(a, b))


def write_merged(rm: rmlib.LoadedRM, output_dir: Path) -> Path:
    """The reloaded RM (LoRA already folded into its base by ``reward_model.load``) as a plain HF directory that
    needs no peft to load."""
    merged_dir = output_dir / "merged"
    rm.model.save_pretrained(str(merged_dir))
    rm.tokenizer.save_pretrained(str(merged_dir))
    dataclasses.replace(rm.info, lora=False).save(merged_dir)
    return merged_dir
