"""What every ``realm align`` algorithm shares: prompts, reward(s), the policy and its frozen reference, rounds with
checkpoints and ``--resume``, progress, the held-out base-vs-aligned report, and the final saved policy.

Under ``accelerate launch`` (several processes, DDP or DeepSpeed ZeRO) every rank runs this loop: realm's own sampling
and scoring are shared out and gathered (``shards``), a ZeRO-3 partitioned policy is gathered for them, rank 0 alone
prints and writes, and metrics.json records how the run was really distributed.

An algorithm plugin subclasses ``AlignJob`` and implements ``train_round(round_index, prompts)``.

Why this module is long: it is the one loop every algorithm runs (data, rewards, policy, rounds, checkpoints, resume,
progress, held-out report); split, each part would be a few methods that only this class calls.
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from realm_cli.align import report as align_report
from realm_cli.align import shards
from realm_cli.rewards import safe as align_scoring
from realm_cli.align import sampling as generation
from realm_cli import distributed, models, tracking
from realm_cli.align import policy
from realm_cli.config import PluginSpec, plugin_field
from realm_cli.contracts import Message, PreferenceRecord, as_messages
from realm_cli.errors import RealmError
from realm_cli.tracking import TrackingOptions
from realm_cli.contracts import Job
from realm_cli.recipes.recipe import ModelConfig
from realm_cli.rewards.build import build_reward

console = Console(stderr=True)


@dataclass
class AlignOptions(generation.Sampling, TrackingOptions):
    """Options every align algorithm accepts (plus the sampling settings it inherits)."""

    rounds: int = 1
    k: int = 4  # responses sampled per prompt
    prompts_per_round: int = 32
    prompts: list[str] = field(default_factory=list)  # inline user prompts, used instead of the data block
    heldout: int = 16  # prompts kept out of training for the base-vs-aligned report (unless data.validation names some)
    heldout_samples: int = 2  # responses per held-out prompt and policy
    eval_reward: PluginSpec | None = plugin_field("reward", default=None)  # the second reward for the report
    learning_rate: float = 5e-6
    train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    epochs: int = 1  # passes over each round's training data
    bf16: bool = True  # bf16 autocast where the hardware is fast at it
    merge_lora: bool = False  # save the final LoRA policy merged into a plain model
    score_batch_size: int = 32
    cpu_threads: int | None = None  # torch CPU threads; 1 wins on a CPU shared with other jobs (no spin-wait thrash)

    def __post_init__(self):
        super().__post_init__()
        for name in ("rounds", "k", "prompts_per_round", "max_new_tokens", "batch_size", "train_batch_size",
                     "heldout", "heldout_samples", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")


class AlignJob(Job):
    commands = ("align",)
    Config = AlignOptions
    needs_reward = True
    multi_process = True  # trains through a TRL trainer, which accelerate/DeepSpeed distribute

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        import torch

        cfg = self.config
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        shards.ensure_process_group()
        self.rank, self.world_size = shards.world()
        self.main = self.rank == 0
        console.quiet = not self.main  # one log: rank 0 speaks for every process
        # TRL toggles checkpointing around each generate() through transformers' deprecated names: one warning per
        # call and rank, nothing a user can act on
        warnings.filterwarnings("ignore", message=r"`gradient_checkpointing_(en|dis)able` is deprecated",
                                category=FutureWarning)
        self.distributed: dict = {"world_size": self.world_size}
        if self.world_size > 1 and not self.multi_process:
            raise RealmError(f"align --algo {self.recipe.trainer.name} trains in one process (its loop is realm's "
                             f"own, with no DDP or DeepSpeed engine to share it out): launch it with "
                             f"launch.num_processes=1")
        self.tokens = {"sampled_here": 0, "gathered": 0}  # realm's own sampling: this rank's share, and all ranks'
        self.rounds_done: list[dict] = []
        random.seed(self.recipe.seed)
        torch.manual_seed(self.recipe.seed)
        if cfg.cpu_threads:
            torch.set_num_threads(cfg.cpu_threads)
        self.model_cfg = self.recipe.model or ModelConfig(name=policy.DEFAULT_POLICY)
        self.progress, self.where = None, "start"
        self.phase(f"loading prompts, reward {self.reward_name!r} and policy {self.model_cfg.name!r}"
                   + (f" on each of {self.world_size} processes" if self.world_size > 1 else ""))
        self.records = self._records()
        train_prompts, heldout_prompts = self._prompts(self.records)
        self.reward = self._reward()
        self.eval_rewards = self._eval_rewards()
        self.tokenizer = policy.load_tokenizer(self.model_cfg)
        self.model = policy.wrap_lora(policy.load_model(self.model_cfg, self.tokenizer), self.model_cfg)
        self.reference = policy.Reference(self.model)
        self.autocast = lambda: models.autocast(policy.device(), "auto" if cfg.bf16 else "fp32")
        self.history: list[dict] = []
        self.last_trainer = None  # the latest round's TRL trainer (see released)
        self.skipped: dict[str, int] = {"unscored_samples": 0}
        self.progress, self.where = None, "held-out"
        base = self._heldout_side("base", heldout_prompts, reuse=resume)
        start_round = self._resume() if resume else 0
        with _progress() as progress:
            task = progress.add_task("aligning", total=cfg.rounds, completed=start_round)
            self.progress = (progress, task)
            for r in range(start_round, cfg.rounds):
                self.where = f"round {r + 1}/{cfg.rounds}"
                prompts = self._round_prompts(train_prompts, r)
                summary = self.train_round(r, prompts) or {}
                self.rounds_done.append({"round": r + 1, **summary})
                self._checkpoint(r)
                progress.advance(task)
                self._print_round(r, summary)
        self.progress, self.where = None, "held-out"
        aligned = self._heldout_side("aligned", heldout_prompts)
        return self._finish(heldout_prompts, base, aligned)

    def train_round(self, round_index: int, prompts: list[list[Message]]) -> dict:
        raise NotImplementedError

    def phase(self, message: str) -> None:
        """Where the run is, with counts and rates: the live line of the rich progress on a terminal, one plain line
        per phase in a log (``realm align > log 2>&1`` shows every phase as it ends)."""
        text = f"{self.where}: {message}"
        if console.is_terminal and self.progress is not None:
            progress, task = self.progress
            progress.update(task, description=text)
        else:
            console.print(text, highlight=False, markup=False, soft_wrap=True)  # one line per phase in a log

    def sample_and_score(self, prompts: list[list[Message]], k: int):
        """``k`` samples per prompt from the current policy, scored; unscorable samples are NaN and counted."""
        started = time.perf_counter()
        self.phase(f"sampling {k} responses for each of {len(prompts)} prompts" + self._shared_out())
        local = self.sample_local(prompts, k)
        took = time.perf_counter() - started
        self.phase(f"sampled {len(local.texts)} responses ({sum(map(len, local.response_ids))} tokens) in "
                   f"{took:.1f} s, {sum(map(len, local.response_ids)) / max(took, 1e-9):.1f} tokens/s"
                   + (" on rank 0" if self.world_size > 1 else "") + "; scoring")
        started = time.perf_counter()
        local_scores = align_scoring.score(self.reward, [prompts[i] for i in local.prompt_index], local.texts,
                                           batch_size=self.config.score_batch_size,
                                           what=f"reward {self.reward_name!r}")
        took = time.perf_counter() - started
        samples, scores = self.gathered(local, local_scores)
        self._count_tokens(local, samples)
        self.phase(f"scored {len(local.texts)} responses in {took:.1f} s ({len(local.texts) / max(took, 1e-9):.1f}"
                   f"/s){' on rank 0' if self.world_size > 1 else ''}, {scores.failed} of {len(samples.texts)} "
                   f"unscored")
        self.skipped["unscored_samples"] += scores.failed
        if scores.errors:
            console.print(f"[yellow]reward could not score {scores.failed} sample(s), excluded: {scores.errors[0]}")
        return samples, scores

    def sample_local(self, prompts, k: int, *, seed: int | None = None) -> generation.Samples:
        """This rank's share of ``k`` samples per prompt from the current policy (all of them in one process),
        generated from full weights when ZeRO-3 partitions the policy. Each rank samples from its own random stream
        (ranks start from one seed: they would otherwise draw the same responses) and leaves the common one as the
        other ranks do."""
        import torch

        sample = lambda seed: generation.sample(  # noqa: E731
            self.model, self.tokenizer, prompts, k=k, settings=self.config, seed=seed, autocast=self.autocast(),
            share=(self.rank, self.world_size))
        with shards.full_weights(self.model):
            if self.world_size == 1:
                return sample(seed)
            base = seed if seed is not None else int(torch.randint(0, 2 ** 31 - 1, (1,)).item())
            with torch.random.fork_rng():
                return sample(base * self.world_size + self.rank)

    def gathered(self, local: generation.Samples, scores: align_scoring.Scores | None = None):
        """Every rank's samples (and scores) in the one-process order, the same on every rank."""
        if self.world_size == 1:
            return local, scores
        n = self.world_size
        samples = generation.Samples(*(shards.gather(getattr(local, f), n) for f in
                                       ("prompt_index", "query_ids", "response_ids", "texts")))
        if scores is None:
            return samples, None
        errors = [e for part in shards.gather([scores.errors], n) for e in part]
        return samples, align_scoring.Scores(shards.gather(scores.values, n), int(shards.all_sum(scores.failed)),
                                             errors)

    def kl_to_reference(self, samples: generation.Samples) -> float:
        """Mean over samples of sum_t log pi(y_t) - log ref(y_t): a Monte Carlo estimate of KL(policy || ref). With
        several processes each rank measures its share of the (gathered) samples."""
        import torch

        if not samples.response_ids:
            return math.nan
        pad = self.tokenizer.pad_token_id
        share = lambda xs: shards.share(xs, self.rank, self.world_size)  # noqa: E731
        query_ids, response_ids = share(samples.query_ids), share(samples.response_ids)
        total = 0.0
        was_training = self.model.training
        self.model.eval()  # no dropout (nor activation checkpointing) in a measurement
        with torch.no_grad(), shards.full_weights(self.model):
            if response_ids:
                pol = generation.token_logprobs(self.model, query_ids, response_ids, pad, autocast=self.autocast())
                with self.reference.model() as ref_model:
                    ref = generation.token_logprobs(ref_model, query_ids, response_ids, pad,
                                                    autocast=self.autocast())
                total = float(sum((p - q).sum().item() for p, q in zip(pol, ref)))
        self.model.train(was_training)
        return shards.all_sum(total) / len(samples.response_ids)

    def warn(self, message: str) -> None:
        console.print(f"[yellow]{message}")

    def _count_tokens(self, local: generation.Samples, gathered: generation.Samples) -> None:
        self.tokens["sampled_here"] += sum(map(len, local.response_ids))
        self.tokens["gathered"] += sum(map(len, gathered.response_ids))

    def _shared_out(self) -> str:
        return f", shared out over {self.world_size} processes" if self.world_size > 1 else ""

    def released(self, trainer) -> None:
        """After each TRL trainer: record how the run was really distributed (``distributed.describe``: world size,
        engine, each rank's share of the parameters) and free the policy from its DeepSpeed engine."""
        if self.world_size > 1:
            self.distributed.update(distributed.describe(trainer))
        shards.release(trainer)
        self.last_trainer = trainer  # its callbacks carry the end-of-run metrics to the tracking integrations

    def log(self, **values) -> dict:
        entry = {"step": len(self.history) + 1, **values}
        self.history.append(entry)
        parts = [f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()]
        self.phase(" ".join(parts))
        return entry

    def trl_args(self, config_cls, name: str, **extra):
        """A TRL config with this recipe's optimisation settings; realm does its own checkpoints and progress."""
        import torch

        from realm_cli import models

        cfg = self.config
        args = dict(
            output_dir=str(self.output_dir / "trl" / name), per_device_train_batch_size=cfg.train_batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
            num_train_epochs=cfg.epochs, bf16=cfg.bf16 and models.bf16_supported(policy.device()),
            use_cpu=not torch.cuda.is_available(), **tracking.training_kwargs(cfg, self.output_dir, self.recipe.name or "align"), save_strategy="no", logging_steps=1,
            disable_tqdm=True, seed=self.recipe.seed,
            # TRL turns it on by default; recomputing activations only pays when memory is short (model.*)
            activation_checkpointing=self.model_cfg.gradient_checkpointing)
        if self.model_cfg.gradient_checkpointing and distributed.deepspeed_launched():
            # ZeRO-3 re-gathers the parameters in the recomputation; torch's non-reentrant checkpoint (transformers'
            # default) then sees different tensors and refuses (TRL forces the same for PEFT: trl#2514)
            args["activation_checkpointing_kwargs"] = {"use_reentrant": True}
        # several CPU processes: gloo, and fp32 under DeepSpeed (before the config is built: it readies DeepSpeed)
        return config_cls(**{**args, **extra, **distributed.trainer_kwargs(policy.device())})

    def drop_trl_reference_adapter(self) -> None:
        """With LoRA, TRL's DPO/GRPO/RLOO trainers add a frozen copy of the adapter named "ref" as the reference. Each
        round builds a new TRL trainer, which must not find the previous round's copy (peft refuses the name)."""
        if "ref" in getattr(self.model, "peft_config", {}):
            self.model.delete_adapter("ref")

    @staticmethod
    def quiet(trainer) -> None:
        """Before ``train()``: realm shows its own progress, so the trainer's per-step prints go; and the launch's
        last word on the trainer (``distributed.prepare_trainer``: e.g. ZeRO-3 offload's optimizer on a CPU)."""
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        distributed.prepare_trainer(trainer, policy.device())

    def trl_logs(self):
        """A TrainerCallback collecting TRL's log dicts into the returned list."""
        from transformers import TrainerCallback

        collected: list[dict] = []

        job = self

        class Collect(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs:
                    collected.append(dict(logs))
                    loss = logs.get("loss")
                    if "train_runtime" in logs:  # the trainer's closing summary, not a step
                        job.phase(f"trained {state.global_step} step(s) in {logs['train_runtime']:.1f} s")
                        return
                    job.phase(f"training step {state.global_step}/{state.max_steps}"
                              + (f", loss {loss:.4f}" if isinstance(loss, (int, float)) else ""))

        return Collect(), collected

    @property
    def reward_name(self) -> str:
        return self.recipe.reward.name if self.recipe.reward else "none"

    def _records(self) -> list[PreferenceRecord]:
        self.validation_records = None
        if self.config.prompts:
            return [PreferenceRecord(as_messages(p), "", "", source="inline", id=f"prompts[{i}]")
                    for i, p in enumerate(self.config.prompts)]
        if self.recipe.data is None or not self.recipe.data.train:
            raise RealmError(f"recipe {self.recipe.name!r}: no prompts: set data.train (e.g. hh-rlhf) or "
                             f"trainer.prompts")
        from realm_cli.data import load as data

        splits = data.load(self.recipe.data)
        if splits.validation:  # the first named validation set is the held-out prompt set
            self.validation_records = next(iter(splits.validation.values()))
        return list(splits.train)

    def _prompts(self, records: list[PreferenceRecord]):
        prompts = _unique_prompts(records)
        if not prompts:
            raise RealmError(f"recipe {self.recipe.name!r}: the prompt set is empty (data.train gave "
                             f"{len(records)} records with no usable prompt)")
        random.Random(self.recipe.seed).shuffle(prompts)
        if self.validation_records is not None:
            heldout = _unique_prompts(self.validation_records)[: self.config.heldout or None]
        else:
            n = min(self.config.heldout, len(prompts) - 1)
            heldout, prompts = prompts[:n], prompts[n:]
        if not heldout:
            raise RealmError(f"recipe {self.recipe.name!r}: the held-out prompt set is empty (trainer.heldout or "
                             f"data.validation)")
        heldout_keys = {_key(p) for p in heldout}
        self.records = [r for r in records if _key(r.prompt) not in heldout_keys]  # offline pairs stay out of it
        return prompts, heldout

    def _round_prompts(self, pool, round_index: int):
        n = min(self.config.prompts_per_round, len(pool))
        start = (round_index * n) % len(pool)
        return [pool[(start + i) % len(pool)] for i in range(n)]

    def _reward(self):
        spec = self.recipe.reward
        if spec is None or spec.name == "none":
            if self.needs_reward:
                raise RealmError(f"align algorithm {self.recipe.trainer.name!r} needs a reward: pass --reward NAME "
                                 f"or set reward: in the recipe")
            return None
        return build_reward(spec)

    def _eval_rewards(self) -> dict:
        out = {}
        if self.reward is not None:
            out[self.reward_name] = self.reward
        spec = self.config.eval_reward
        if spec is not None and spec.name != "none":
            out[spec.name if spec.name not in out else spec.name + "-eval"] = build_reward(spec)
        return out

    def _heldout_side(self, side: str, prompts, *, reuse: bool = False):
        """The held-out answers of one policy, scored by every eval reward. ``reuse``: a resumed run keeps the base
        policy's answers from its first start, when they were scored by the same rewards on the same prompts (a new
        run into the same directory, or another reward, answers and scores afresh)."""
        path = self.output_dir / f"heldout-{side}.json"
        if reuse and path.exists():
            kept = json.loads(path.read_text())
            if set(kept.get("scores", {})) == set(self.eval_rewards) and kept.get("prompts_sha") == _prompts_sha(prompts):
                return kept
        started = time.perf_counter()
        self.phase(f"{side} policy: answering {len(prompts)} held-out prompts, scoring with "
                   f"{', '.join(self.eval_rewards) or 'no reward'}" + self._shared_out())
        local = self.sample_local(prompts, self.config.heldout_samples, seed=self.recipe.seed + 1)
        paired = [prompts[i] for i in local.prompt_index]
        scores = {name: shards.gather(align_scoring.score(r, paired, local.texts,
                                                          batch_size=self.config.score_batch_size,
                                                          what=f"reward {name!r}").values, self.world_size)
                  for name, r in self.eval_rewards.items()}
        samples, _ = self.gathered(local)
        self._count_tokens(local, samples)
        out = {"prompts_sha": _prompts_sha(prompts), "prompt_index": samples.prompt_index, "texts": samples.texts, "scores": scores,
               "lengths": [len(r) for r in samples.response_ids],
               "kl": self.kl_to_reference(samples) if side == "aligned" else 0.0}
        if self.main:
            path.write_text(json.dumps(out))
        self.phase(f"{side} policy: {len(samples.texts)} held-out answers scored in {time.perf_counter() - started:.1f} s")
        return out

    def _checkpoint(self, round_index: int) -> None:
        import torch

        ckpt = self.output_dir / "checkpoints" / f"round-{round_index + 1}"
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        with shards.full_weights(self.model, [p for _, p in named]):  # ZeRO-3: every rank gathers, rank 0 saves
            trainable = {n: p.detach().cpu().clone() for n, p in named}
        extra = self.extra_state()
        if not self.main:
            return
        ckpt.mkdir(parents=True, exist_ok=True)
        torch.save({"policy": trainable, **extra}, ckpt / "state.pt")
        (ckpt / "progress.json").write_text(json.dumps({"round": round_index + 1, "history": self.history,
                                                        "skipped": self.skipped}))

    def extra_state(self) -> dict:
        """More to checkpoint (PPO: value head, optimizer, KL controller)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def _resume(self) -> int:
        import torch

        root = self.output_dir / "checkpoints"
        done = sorted((int(p.name.split("-")[1]), p) for p in root.glob("round-*") if (p / "progress.json").exists())
        if not done:
            console.print(f"[yellow]--resume: no checkpoint under {root}; starting from round 1")
            return 0
        last, ckpt = done[-1]
        state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
        missing = set(state["policy"]) - {n for n, _ in self.model.named_parameters()}
        if missing:
            raise RealmError(f"--resume: checkpoint {ckpt} does not match this policy (e.g. {sorted(missing)[0]})")
        self.model.load_state_dict(state["policy"], strict=False)
        self.load_extra_state(state)
        progress = json.loads((ckpt / "progress.json").read_text())
        self.history, self.skipped = progress["history"], progress["skipped"]
        console.print(f"resuming after round {last} from {ckpt}")
        return last

    def _print_round(self, round_index: int, summary: dict) -> None:
        if not summary:
            return
        table = Table(title=f"round {round_index + 1}/{self.config.rounds}")
        for key in summary:
            table.add_column(key, justify="right")
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in summary.values()])
        console.print(table)

    def _finish(self, heldout_prompts, base: dict, aligned: dict) -> dict:
        names = list(self.eval_rewards)
        if self.world_size > 1:  # every rank's own share, and the gathered total each rank ended with
            self.distributed["sampled_tokens_per_rank"] = shards.gather([self.tokens["sampled_here"]],
                                                                        self.world_size)
            self.distributed["gathered_tokens_per_rank"] = shards.gather([self.tokens["gathered"]], self.world_size)
        summary = align_report.summarise(base, aligned, names, aligned["kl"], len(heldout_prompts))
        if self.last_trainer is not None:
            tracking.log_metrics(self.last_trainer, {"heldout": summary, "final": self.history[-1] if self.history
                                                     else {}}, "realm")
        plot = None
        if self.main:
            align_report.write_responses(self.output_dir / "heldout.jsonl", heldout_prompts, base, aligned)
            (self.output_dir / "history.json").write_text(json.dumps(self.history, indent=1))
            plot = align_report.plot_history(self.history, self.output_dir / "reward_kl.png")
            if names:
                align_report.print_summary(summary, names, console)
        out = policy.save(self.model, self.tokenizer, self.output_dir / "policy", merge_lora=self.config.merge_lora,
                          base_name=self.recipe.model.name, main=self.main)
        console.print(f"aligned policy saved to {out}")
        return {"algo": self.recipe.trainer.name, "reward": self.reward_name, "rounds": self.config.rounds,
                "heldout": summary, "skipped": self.skipped, "policy_dir": str(out),
                "plot": str(plot) if plot else None, "steps": len(self.history),
                "final": self.history[-1] if self.history else {}, "round_summaries": self.rounds_done,
                "distributed": self.distributed}


def _key(prompt) -> str:
    return json.dumps(prompt, sort_keys=True)


def _prompts_sha(prompts) -> str:
    import hashlib

    return hashlib.sha256(_key(prompts).encode("utf-8")).hexdigest()[:16]


def _unique_prompts(records) -> list[list[Message]]:
    seen, out = set(), []
    for rec in records:
        if rec.prompt and _key(rec.prompt) not in seen:
            seen.add(_key(rec.prompt))
            out.append(rec.prompt)
    return out


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]align"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.description}"), console=console, transient=False)
