"""What every ``realm align`` algorithm shares: prompts, reward(s), the policy and its frozen reference, rounds with
checkpoints and ``--resume``, progress, the held-out base-vs-aligned report, and the final saved policy.

An algorithm plugin subclasses ``AlignJob`` and implements ``train_round(round_index, prompts)``.

Why this module is long: it is the one loop every algorithm runs (data, rewards, policy, rounds, checkpoints, resume,
progress, held-out report); split, each part would be a few methods that only this class calls.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from realm_cli.align import report as align_report
from realm_cli.rewards import safe as align_scoring
from realm_cli.align import sampling as generation
from realm_cli import models
from realm_cli.align import policy
from realm_cli.config import PluginSpec, plugin_field
from realm_cli.contracts import Message, PreferenceRecord, as_messages
from realm_cli.errors import RealmError
from realm_cli.contracts import Job
from realm_cli.recipes.recipe import ModelConfig
from realm_cli.rewards.build import build_reward

console = Console(stderr=True)


@dataclass
class AlignOptions(generation.Sampling):
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

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        import torch

        cfg = self.config
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        random.seed(self.recipe.seed)
        torch.manual_seed(self.recipe.seed)
        if cfg.cpu_threads:
            torch.set_num_threads(cfg.cpu_threads)
        self.model_cfg = self.recipe.model or ModelConfig(name=policy.DEFAULT_POLICY)
        self.records = self._records()
        train_prompts, heldout_prompts = self._prompts(self.records)
        self.reward = self._reward()
        self.eval_rewards = self._eval_rewards()
        self.tokenizer = policy.load_tokenizer(self.model_cfg)
        self.model = policy.wrap_lora(policy.load_model(self.model_cfg, self.tokenizer), self.model_cfg)
        self.reference = policy.Reference(self.model)
        self.autocast = lambda: models.autocast(policy.device(), "auto" if cfg.bf16 else "fp32")
        self.history: list[dict] = []
        self.skipped: dict[str, int] = {"unscored_samples": 0}
        self.progress, self.where = None, "held-out"
        base = self._heldout_side("base", heldout_prompts)
        start_round = self._resume() if resume else 0
        with _progress() as progress:
            task = progress.add_task("aligning", total=cfg.rounds, completed=start_round)
            self.progress = (progress, task)
            for r in range(start_round, cfg.rounds):
                self.where = f"round {r + 1}/{cfg.rounds}"
                prompts = self._round_prompts(train_prompts, r)
                summary = self.train_round(r, prompts) or {}
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
            console.print(text, highlight=False, markup=False)

    def sample_and_score(self, prompts: list[list[Message]], k: int):
        """``k`` samples per prompt from the current policy, scored; unscorable samples are NaN and counted."""
        started = time.perf_counter()
        self.phase(f"sampling {k} responses for each of {len(prompts)} prompts")
        samples = generation.sample(self.model, self.tokenizer, prompts, k=k, settings=self.config,
                                    autocast=self.autocast())
        took = time.perf_counter() - started
        tokens = sum(map(len, samples.response_ids))
        self.phase(f"sampled {len(samples.texts)} responses ({tokens} tokens) in {took:.1f} s, "
                   f"{tokens / max(took, 1e-9):.1f} tokens/s; scoring")
        started = time.perf_counter()
        scores = align_scoring.score(self.reward, [prompts[i] for i in samples.prompt_index], samples.texts,
                                     batch_size=self.config.score_batch_size, what=f"reward {self.reward_name!r}")
        took = time.perf_counter() - started
        self.phase(f"scored {len(samples.texts)} responses in {took:.1f} s ({len(samples.texts) / max(took, 1e-9):.1f}"
                   f"/s), {scores.failed} unscored")
        self.skipped["unscored_samples"] += scores.failed
        if scores.errors:
            console.print(f"[yellow]reward could not score {scores.failed} sample(s), excluded: {scores.errors[0]}")
        return samples, scores

    def kl_to_reference(self, samples: generation.Samples) -> float:
        """Mean over samples of sum_t log pi(y_t) - log ref(y_t): a Monte Carlo estimate of KL(policy || ref)."""
        import torch

        if not samples.response_ids:
            return math.nan
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            pol = generation.token_logprobs(self.model, samples.query_ids, samples.response_ids, pad,
                                            autocast=self.autocast())
            with self.reference.model() as ref_model:
                ref = generation.token_logprobs(ref_model, samples.query_ids, samples.response_ids, pad,
                                                autocast=self.autocast())
        return float(sum((p - q).sum().item() for p, q in zip(pol, ref)) / len(pol))

    def warn(self, message: str) -> None:
        console.print(f"[yellow]{message}")

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
            use_cpu=not torch.cuda.is_available(), report_to="none", save_strategy="no", logging_steps=1,
            disable_tqdm=True, seed=self.recipe.seed,
            # TRL turns it on by default; recomputing activations only pays when memory is short (model.*)
            activation_checkpointing=self.model_cfg.gradient_checkpointing)
        return config_cls(**{**args, **extra})

    def drop_trl_reference_adapter(self) -> None:
        """With LoRA, TRL's DPO/GRPO/RLOO trainers add a frozen copy of the adapter named "ref" as the reference. Each
        round builds a new TRL trainer, which must not find the previous round's copy (peft refuses the name)."""
        if "ref" in getattr(self.model, "peft_config", {}):
            self.model.delete_adapter("ref")

    @staticmethod
    def quiet(trainer) -> None:
        """realm shows its own progress: drop the trainer's per-step prints."""
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)

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

    def _heldout_side(self, side: str, prompts):
        path = self.output_dir / f"heldout-{side}.json"
        if side == "base" and path.exists():  # a resumed run keeps the base policy's answers from the first start
            return json.loads(path.read_text())
        started = time.perf_counter()
        self.phase(f"{side} policy: answering {len(prompts)} held-out prompts, scoring with "
                   f"{', '.join(self.eval_rewards) or 'no reward'}")
        samples = generation.sample(self.model, self.tokenizer, prompts, k=self.config.heldout_samples,
                                    settings=self.config, seed=self.recipe.seed + 1, autocast=self.autocast())
        paired = [prompts[i] for i in samples.prompt_index]
        scores = {name: align_scoring.score(r, paired, samples.texts, batch_size=self.config.score_batch_size,
                                            what=f"reward {name!r}").values
                  for name, r in self.eval_rewards.items()}
        out = {"prompt_index": samples.prompt_index, "texts": samples.texts, "scores": scores,
               "lengths": [len(r) for r in samples.response_ids],
               "kl": self.kl_to_reference(samples) if side == "aligned" else 0.0}
        path.write_text(json.dumps(out))
        self.phase(f"{side} policy: {len(samples.texts)} held-out answers scored in {time.perf_counter() - started:.1f} s")
        return out

    def _checkpoint(self, round_index: int) -> None:
        import torch

        ckpt = self.output_dir / "checkpoints" / f"round-{round_index + 1}"
        ckpt.mkdir(parents=True, exist_ok=True)
        trainable = {n: p.detach().cpu() for n, p in self.model.named_parameters() if p.requires_grad}
        torch.save({"policy": trainable, **self.extra_state()}, ckpt / "state.pt")
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
        summary = align_report.summarise(base, aligned, names, aligned["kl"], len(heldout_prompts))
        align_report.write_responses(self.output_dir / "heldout.jsonl", heldout_prompts, base, aligned)
        (self.output_dir / "history.json").write_text(json.dumps(self.history, indent=1))
        plot = align_report.plot_history(self.history, self.output_dir / "reward_kl.png")
        if names:
            align_report.print_summary(summary, names, console)
        out = policy.save(self.model, self.tokenizer, self.output_dir / "policy", merge_lora=self.config.merge_lora,
                          base_name=self.recipe.model.name)
        console.print(f"aligned policy saved to {out}")
        return {"algo": self.recipe.trainer.name, "reward": self.reward_name, "rounds": self.config.rounds,
                "heldout": summary, "skipped": self.skipped, "policy_dir": str(out),
                "plot": str(plot) if plot else None, "steps": len(self.history),
                "final": self.history[-1] if self.history else {}}


def _key(prompt) -> str:
    return json.dumps(prompt, sort_keys=True)


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
