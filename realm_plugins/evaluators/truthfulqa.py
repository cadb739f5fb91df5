"""TruthfulQA MC1/MC2 (and MC0 on the current release) as lm-evaluation-harness 0.4.13 scores them (mc1 version
2.0, mc2 version 3.0), for one or more causal LMs side by side; optionally an answer-generation mode judged by a
reward plugin, reported separately. The results record the protocol: harness, task versions, BOS handling, target
delimiter and which log-likelihood path ran."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.errors import RealmError
from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Evaluator

METRICS = ("mc1", "mc2", "mc0")


@dataclass
class TruthfulQAConfig:
    models: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct"])  # aliases, paths or hub ids
    data: PluginSpec = plugin_field("dataset", default_factory=lambda: PluginSpec("truthfulqa"))
    batch_size: int = 32  # choices per forward pass
    dtype: Literal["float32", "bfloat16"] = "float32"
    judge: PluginSpec | None = plugin_field("reward", default=None)  # set to also generate answers and judge them
    max_new_tokens: int = 48
    # BOS as the harness's add_bos_token: tokenizer (the harness default in 0.4.13: the tokenizer decides), true, false
    bos: Literal["tokenizer", True, False] = "tokenizer"
    exact: bool = False  # true: the harness's layout (one forward per choice, no batch_size), bit-identical, slower

    def __post_init__(self):
        if not isinstance(self.bos, str):
            self.bos = bool(self.bos)
        if not self.models:
            raise ValueError("models: at least one model is required")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {self.batch_size}")


def load_items(spec: PluginSpec) -> list:
    from realm_cli.contracts import TruthfulQAItem
    from realm_cli.data.load import load_source

    items = load_source(spec).records
    if not items:
        raise RealmError(f"dataset {spec.name}: no questions")
    if not isinstance(items[0], TruthfulQAItem):
        raise RealmError(f"dataset {spec.name} yields {type(items[0]).__name__} records, not TruthfulQA questions")
    return items


def load_causal_lm(name: str, dtype: str, bos="tokenizer"):
    from realm_cli import models
    from realm_cli.evaluate.loglik import load_tokenizer

    with models.loading(name):
        tokenizer = load_tokenizer(models.local_path(name), bos)
    return models.load_causal_lm(name, dtype=dtype), tokenizer


def question_choices(item) -> list[str]:
    """Every distinct choice of a question once (MC1's choices are a subset of MC2's), in first-seen order."""
    return list(dict.fromkeys([*item.mc1_choices, *item.mc2_choices, *item.mc0_choices]))


def score_item(item, ll: dict[str, float]) -> dict:
    from realm_cli.evaluate import truthfulqa as tqa

    if not item.mc1_labels or item.mc1_labels[0] != 1:
        raise RealmError(f"truthfulqa {item.id or item.question[:40]!r}: mc1 must list its true answer first")
    out = {"mc1": tqa.mc1([ll[c] for c in item.mc1_choices]),
           "mc2": tqa.mc2([ll[c] for c in item.mc2_choices], item.mc2_labels)}
    if item.mc0_choices:
        order = sorted(range(len(item.mc0_choices)), key=lambda i: -item.mc0_labels[i])  # the true answer first
        out["mc0"] = tqa.mc1([ll[item.mc0_choices[i]] for i in order])
    return out


CHUNK = 8  # questions handed to the scorer at a time (it packs ~5 to a forward): progress moves every few seconds


def loglikelihoods(model_name: str, items: list, config: TruthfulQAConfig, progress,
                   info: dict | None = None) -> list[dict[str, float]]:
    """Every distinct choice's summed log-likelihood, per question; ``info`` (if given) gets ``bos_added`` and the
    load and scoring seconds."""
    from realm_cli.evaluate import truthfulqa as tqa
    from realm_cli.evaluate.loglik import ContinuationScorer

    info = {} if info is None else info
    started = time.perf_counter()
    model, tokenizer = load_causal_lm(model_name, config.dtype, config.bos)
    try:
        scorer = ContinuationScorer(model, tokenizer, shared_prefix=tqa.QA_PRIMER, batch_size=config.batch_size,
                                    bos=config.bos, exact=config.exact)
    except ValueError as exc:
        raise RealmError(f"truthfulqa {model_name}: {exc}") from None
    info["bos_added"] = scorer.bos_added
    info["load_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    task = progress.add_task(f"truthfulqa {model_name}", total=len(items))
    out = []
    every = max(1, len(items) // 10)
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        choices = [question_choices(item) for item in chunk]
        lls = scorer.score_many([(tqa.context(item.question), [tqa.continuation(c) for c in ch])
                                 for item, ch in zip(chunk, choices)])
        out.extend(dict(zip(ch, ll)) for ch, ll in zip(choices, lls))
        progress.advance(task, len(chunk))
        if not progress.console.is_terminal and (len(out) // every > (len(out) - len(chunk)) // every
                                                   or len(out) == len(items)):
            progress.console.print(f"truthfulqa {model_name}: {len(out)}/{len(items)} questions", highlight=False)
    info["score_s"] = round(time.perf_counter() - started, 3)
    return out


def generate_answers(model_name: str, items: list, config: TruthfulQAConfig, progress) -> list[str]:
    """Greedy answers after the same QA primer, cut at the first newline (the primer's answer format)."""
    import torch

    from realm_cli.evaluate import truthfulqa as tqa

    model, tokenizer = load_causal_lm(model_name, config.dtype, config.bos)
    special = {} if config.bos == "tokenizer" else {"add_special_tokens": config.bos}  # as the scoring encodes
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    task = progress.add_task(f"generating {model_name}", total=len(items))
    answers = []
    step = max(1, min(config.batch_size, 16))
    for start in range(0, len(items), step):
        batch = items[start:start + step]
        enc = tokenizer([tqa.context(i.question) for i in batch], return_tensors="pt", padding=True, **special)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=config.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1]:]:
            answers.append(tokenizer.decode(row, skip_special_tokens=True).split("\n")[0].strip())
        progress.advance(task, len(batch))
    return answers


def judge_answers(judge: PluginSpec, items: list, answers: list[str]) -> dict:
    from realm_cli.evaluate.stats import mean_std
    from realm_cli.rewards.build import build_reward

    reward = build_reward(judge)
    try:
        scores = reward.score([[{"role": "user", "content": i.question}] for i in items], answers)
    finally:
        reward.close()
    kept = [s for s in scores if not math.isnan(s)]
    mean, std = mean_std(kept)
    return {"judged_by": judge.name, "mean_reward": mean, "reward_std": std, "answers": len(answers),
            "unscored": len(scores) - len(kept), "scores": scores}


def side_by_side(per_model: dict[str, dict]) -> dict:
    """Each model's metrics and its difference from the first model (the baseline)."""
    names = list(per_model)
    base = per_model[names[0]]
    out = {}
    for name in names:
        row = dict(per_model[name])
        if name != names[0]:
            row["delta"] = {k: row[k] - base[k] for k in METRICS if k in row and k in base}
        out[name] = row
    return out


def print_table(summary: dict, console) -> None:
    from rich.table import Table

    from realm_cli.evaluate import truthfulqa as tqa

    names = list(summary)
    table = Table(title=f"TruthfulQA ({tqa.HARNESS}: mc1 v{tqa.MC1_VERSION:g}, mc2 v{tqa.MC2_VERSION:g})")
    table.add_column("metric")
    for i, name in enumerate(names):
        table.add_column(name, justify="right")
        if i:
            table.add_column(f"Δ vs {names[0]}", justify="right")
    for metric in [m for m in METRICS if m in summary[names[0]]]:
        cells = []
        for i, name in enumerate(names):
            cells.append(f"{summary[name][metric]:.4f}")
            if i:
                cells.append(f"{summary[name]['delta'][metric]:+.4f}")
        table.add_row(metric.upper(), *cells)
    table.add_row("questions", *[str(summary[n]["questions"]) for n in names[:1]],
                  *sum(([str(summary[n]["questions"]), ""] for n in names[1:]), []))
    table.add_row("BOS", *["yes" if summary[names[0]]["bos_added"] else "no"],
                  *sum((["yes" if summary[n]["bos_added"] else "no", ""] for n in names[1:]), []))
    console.print(table)
    judged = {n: summary[n]["generation"] for n in names if summary[n].get("generation")}
    if judged:
        gen = Table(title=f"Generation mode: greedy answers judged by reward "
                          f"{next(iter(judged.values()))['judged_by']!r} (not part of MC1/MC2)")
        for col in ("model", "mean reward", "std", "answers", "unscored"):
            gen.add_column(col, justify="left" if col == "model" else "right")
        for name, g in judged.items():
            gen.add_row(name, f"{g['mean_reward']:.4f}", f"{g['reward_std']:.4f}", str(g["answers"]),
                        str(g["unscored"]))
        console.print(gen)


class TruthfulQAEvaluator(Evaluator):
    Config = TruthfulQAConfig

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from realm_cli.evaluate import truthfulqa as tqa

        console = Console(stderr=True)
        items = load_items(self.config.data)
        per_model, per_question, timing = {}, {}, {}
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console) as progress:
            for name in self.config.models:
                info: dict = {}
                lls = loglikelihoods(name, items, self.config, progress, info)
                scores = [score_item(item, ll) for item, ll in zip(items, lls)]
                row = {k: sum(s[k] for s in scores) / len(scores) for k in METRICS if k in scores[0]}
                row["questions"] = len(items)
                row["bos_added"] = info["bos_added"]  # what the tokenizer did in this BOS mode
                timing[name] = {"load_s": info["load_s"], "score_s": info["score_s"]}
                per_question[name] = [{"id": item.id, "question": item.question, **s, "loglikelihoods": ll}
                                      for item, s, ll in zip(items, scores, lls)]
                if self.config.judge is not None:
                    answers = generate_answers(name, items, self.config, progress)
                    judged = judge_answers(self.config.judge, items, answers)
                    for q, answer, score in zip(per_question[name], answers, judged.pop("scores")):
                        q["generated"] = answer
                        q["judge_reward"] = score
                    row["generation"] = judged
                per_model[name] = row
        summary = side_by_side(per_model)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "truthfulqa.json").write_text(json.dumps(
            {"protocol": tqa.protocol(self.config.bos, "exact" if self.config.exact else "cached"),
             "dataset": {"name": self.config.data.name, "questions": len(items)},
             "models": summary, "seconds": timing, "per_question": per_question}, indent=1) + "\n")
        print_table(summary, console)
        return summary


@hookimpl
def register_evaluators(register):
    register("truthfulqa", TruthfulQAEvaluator,
             description="TruthfulQA MC1/MC2/MC0 (lm-evaluation-harness 0.4.13 protocol) for causal LMs "
                      "side by side")
