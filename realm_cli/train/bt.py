"""Bradley-Terry reward-model training on TRL's RewardTrainer, extended where it falls short: the ``train-rm`` job.

What TRL 1.16's RewardTrainer already does and realm keeps: the loss -logsigmoid(r_c - r_r - margin), the optional
center_rewards_coefficient term, chosen and rejected in one forward pass (its collator stacks them), PEFT wrapping,
HF Trainer's checkpointing/resume, accumulation, mixed precision, DeepSpeed. What realm adds:
- no pair dropped for length: each side is fitted by realm's one cut order (``realm_cli.data.length``, the same
  ``RMFormat.fit`` the bt reward scores with), counted per split by ``realm_cli.data.load``, and handed to TRL
  pre-tokenized with its length filter off (TRL drops them, trl#2488);
- length-grouped batches (HF's LengthGroupedSampler over a precomputed ``length`` column) so little is padding;
- the score head always saved with a LoRA adapter (trl#1379), a plain merged model on request;
- rich progress, per-validation-set score statistics, reward mean/std for normalisation, a PNG of the run;
- every user mistake (model, tokenizer, pad token, hardware) reported before data or weights are touched;
- under DeepSpeed ZeRO and FSDP2 (also on CPU processes, ``deepspeed_cpu``): how the run is laid out (each rank's
  share of the parameters, ``realm_cli.distributed.describe``) printed, recorded and checked (a sharding request
  that ran unsharded stops), and the saved gathered model checked against the live sharded one on every rank.

The parts: ``preflight`` (checks, precision, resume), ``loading`` (tokenizer, data, model, LoRA), ``trainer`` (the
RewardTrainer subclass, its arguments, progress), ``metrics`` (validation sets, reload check), ``plots``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

from realm_cli import distributed, tracking
from realm_cli.errors import RealmError
from realm_cli.evaluate.stats import mean_std
from realm_cli.rewards import rm as rmlib
from realm_cli.train.loading import load_model, load_pairs, load_tokenizer_and_config, peft_config
from realm_cli.train.metrics import evaluate_sets, name_eval_metrics, print_table, reload_difference
from realm_cli.train.plots import plot
from realm_cli.train.preflight import describe_precision, last_checkpoint, preflight, resolve_precision, \
    uses_bf16_base, uses_master_weights
from realm_cli.train.trainer import console, layout_callback, progress_callback, reward_trainer_class, \
    time_budget_callback, training_arguments


def train(recipe, cfg, output_dir: Path, *, resume: bool = False) -> dict:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    preflight(recipe, cfg, device)
    precision = resolve_precision(cfg.precision, device)
    sharded_cpu = device == "cpu" and (distributed.deepspeed_launched() or distributed.fsdp_launched())
    if sharded_cpu:
        precision = "fp32"  # DeepSpeed's CPU accelerator and FSDP2 on a CPU: fp32 (see distributed.trainer_kwargs)
    master = uses_master_weights(recipe, precision, device)
    bf16_base = uses_bf16_base(recipe, precision, device)
    precision_mode, precision_reason = describe_precision(cfg.precision, precision, device, master, bf16_base)
    if sharded_cpu:
        precision_reason = f"{'DeepSpeed' if distributed.deepspeed_launched() else 'FSDP'} on CPU processes " \
            f"runs fp32 (trainer.precision={cfg.precision} applies on GPUs)"
    if distributed.is_main_process():
        console.print(f"precision: {precision_mode} ({precision_reason})", highlight=False)
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
    pairs = load_pairs(recipe, fmt, encode_validation=bool(cfg.eval_steps))
    splits = pairs.splits
    if distributed.is_main_process():
        console.print(splits.report)

    import datasets

    train_ds = datasets.Dataset.from_dict(pairs.train)
    eval_ds = {name: datasets.Dataset.from_dict(cols) for name, cols in pairs.validation.items()} or None

    from transformers.trainer_callback import PrinterCallback
    from trl import RewardConfig

    pairs_per_step = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * distributed.world_size()
    steps_hint = cfg.max_steps or math.ceil(len(train_ds) * cfg.epochs / pairs_per_step)
    budget = None
    if cfg.max_minutes is not None and resume_from is not None:
        # The budget was spent planning the first run: continue its plan (its LR schedule), do not plan anew.
        planned = json.loads((resume_from / "trainer_state.json").read_text()).get("max_steps")
        if planned:
            cfg = dataclasses.replace(cfg, max_steps=int(planned))
    elif cfg.max_minutes is not None:
        budget = time_budget_callback(cfg.max_minutes)
    args = RewardConfig(**{**training_arguments(cfg, recipe, checkpoints, precision, device, steps_hint),
                           **distributed.trainer_kwargs(device)})
    from transformers import set_seed

    set_seed(recipe.seed)  # the new score head is random: same seed, same head
    model = load_model(recipe.model, tokenizer, precision, master, bf16_base)
    segment_ids = rmlib.attach_segment_ids(model, fmt)
    lora = recipe.model.lora
    progress = progress_callback(pairs_per_step)
    trainer_cls = reward_trainer_class()
    optimizer = None
    if master:
        from realm_cli.train.master_weights import MasterWeightAdamW

        optimizer = (MasterWeightAdamW, trainer_cls.get_optimizer_cls_and_kwargs(args, model)[1])
    trainer = trainer_cls(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
        peft_config=peft_config(model, lora) if lora is not None else None, callbacks=[progress],
        optimizer_cls_and_kwargs=optimizer)
    progress.trainer = trainer
    if bf16_base:  # PEFT upcasts LoRA adapters to fp32 (autocast_adapter_dtype); whatever trains must be fp32
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    if budget is not None:
        budget.trainer = trainer
        trainer.add_callback(budget)
    distributed.prepare_trainer(trainer, device)
    trainer.remove_callback(PrinterCallback)  # the rich line replaces its printed log dicts
    if trainer.args.n_gpu > 1:
        raise RealmError("several GPUs are visible to one process: use a multi_gpu recipe (accelerate launch)")

    layout = layout_callback(trainer)
    trainer.add_callback(layout)
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
        "train": {"pairs": len(train_ds), "truncated_here": pairs.truncated, "steps": trainer.state.global_step,
                  "steps_this_run": trained_steps, "resumed_from": str(resume_from) if resume_from else None,
                  "epochs": trainer.state.epoch, "loss": result.training_loss, "seconds": round(train_seconds, 2),
                  "pairs_per_second": round(trained_steps * pairs_per_step / max(train_seconds, 1e-9), 2),
                  "precision": precision, "precision_mode": precision_mode, "precision_reason": precision_reason,
                  "master_weights": master, "bf16_base": bf16_base, "max_length": max_length, "format": fmt.format,
                  "world_size": distributed.world_size(), "lora": lora is not None},
        "distributed": layout.info,
        "data": splits.report.to_json(),
        "reward_stats": {"mean": seen_mean, "std": seen_std, "window": len(trainer.seen_rewards)},
        "eval_log": name_eval_metrics(trainer.state.log_history),
    }
    if cfg.max_minutes is not None:
        plan = dict(budget.plan or {"max_minutes": cfg.max_minutes, "planned_steps": None}) if budget else \
            {"max_minutes": cfg.max_minutes, "planned_steps": cfg.max_steps, "resumed": True}
        plan["wall_seconds"] = round(train_seconds, 2)
        metrics["train"]["time_budget"] = plan
    sharded = layout.info.get("strategy") in ("zero3", "fsdp2")
    probe = sharded_live_scores(trainer, splits, fmt, tokenizer.pad_token_id) if sharded else None
    if layout.info.get("strategy") == "zero3":
        # HF keeps ZeRO-3 "on" for every later from_pretrained in this process: the reload below would partition
        # itself over ranks that have finished (a collective with no peer: a hang or a crash). Off: a plain load.
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    if distributed.rank() != 0:
        return metrics
    tokenizer.save_pretrained(str(output_dir))
    rmlib.RMInfo(format=fmt.format, max_length=max_length, reward_mean=seen_mean, reward_std=seen_std,
                 base_model=recipe.model.name, lora=lora is not None, segment_ids=segment_ids).save(output_dir)

    rm = rmlib.load(str(output_dir), max_length=max_length)
    if probe is None:
        metrics["train"]["reload_max_abs_diff"] = reload_difference(trainer, rm, splits, fmt)
    else:
        seqs, live = probe
        reloaded = rmlib.score_ids(rm.model, seqs, rm.tokenizer.pad_token_id, device=rm.device, precision="fp32")
        metrics["train"]["reload_max_abs_diff"] = max(abs(a - b) for a, b in zip(live, reloaded))
        metrics["train"]["live_scores"] = live  # the gathered model's, for checking a reload elsewhere
    if cfg.merge:
        metrics["merged"] = str(write_merged(rm, output_dir))
    if rmlib.scoring_dtype("auto", rm.device) == "bfloat16":  # the validation sets scored as the bt reward does
        rm.model.to(torch.bfloat16)
    val_metrics, scores = evaluate_sets(rm, splits.validation, cfg.eval_batch_size, train=splits.train,
                                        say=lambda line: console.print(line, highlight=False, markup=False,
                                                                       soft_wrap=True))
    metrics["validation"] = val_metrics
    tracking.log_metrics(trainer, {"validation": val_metrics}, "realm")
    if val_metrics:
        print_table(val_metrics, console)
    plot(trainer.state.log_history, scores, output_dir / "training.png", metrics=val_metrics)
    metrics["plot"] = str(output_dir / "training.png")
    return metrics


def sharded_live_scores(trainer, splits, fmt: rmlib.RMFormat, pad_id: int, n: int = 16):
    """The sequences ``metrics.reload_difference`` checks (the first validation set's, else the train pairs'
    chosen sides) and the live model's fp32 scores on them, run on EVERY rank: under ZeRO-3 and FSDP2 each forward
    gathers the shards from all ranks, so rank 0 alone would wait forever (the reason reload_difference, a rank-0
    check, is not used there)."""
    records = (next(iter(splits.validation.values()), None) or splits.train)[:n]
    seqs = [fmt.fit(r.prompt, r.chosen).ids for r in records]
    device = next(trainer.model.parameters()).device.type
    return seqs, rmlib.score_ids(trainer.model, seqs, pad_id, device=device, precision="fp32")


def write_merged(rm: rmlib.LoadedRM, output_dir: Path) -> Path:
    """The reloaded RM (LoRA already folded into its base by ``reward_model.load``) as a plain HF directory that
    needs no peft to load."""
    merged_dir = output_dir / "merged"
    rm.model.save_pretrained(str(merged_dir))
    rm.tokenizer.save_pretrained(str(merged_dir))
    dataclasses.replace(rm.info, lora=False).save(merged_dir)
    return merged_dir
