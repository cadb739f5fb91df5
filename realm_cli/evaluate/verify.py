"""`realm verify`: check that a run's artifacts exist and really load — metrics, resolved recipe, JSON/PNG outputs,
and every saved model (with its tokenizer), which must also produce finite outputs on one short input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Check:
    artifact: str
    ok: bool
    detail: str


def model_dirs(run_dir: Path) -> list[Path]:
    """Saved models (config.json) and adapters anywhere in the run, except intermediate checkpoints."""
    found = []
    for marker in ("config.json", "adapter_config.json"):
        for path in sorted(run_dir.rglob(marker)):
            if not any(part.startswith("checkpoint") for part in path.relative_to(run_dir).parts):
                found.append(path.parent)
    return list(dict.fromkeys(found))


def check_model(path: Path) -> Check:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    name = str(path)
    try:
        adapter = path / "adapter_config.json"
        if adapter.is_file() and not (path / "config.json").is_file():
            task = json.loads(adapter.read_text()).get("task_type")
            if task == "SEQ_CLS":  # a LoRA reward model: its one-logit head needs realm's loader (num_labels=1)
                from realm_cli.rewards.rm import load

                model = load(str(path), device="cpu", dtype="float32").model
            else:  # a policy adapter on a causal LM; its base may be a realm alias (resolved offline here)
                from peft import PeftModel

                from realm_cli import models

                base = json.loads(adapter.read_text())["base_model_name_or_path"]
                model = PeftModel.from_pretrained(models.load_causal_lm(base, dtype="float32"), path)
            kind = f"LoRA adapter ({task or 'no task type'})"
        else:
            config = AutoConfig.from_pretrained(path)
            arch = (config.architectures or [""])[0]
            cls = AutoModelForSequenceClassification if arch.endswith("ForSequenceClassification") \
                else AutoModelForCausalLM
            model = cls.from_pretrained(path)
            kind = arch or cls.__name__
        tokenizer = AutoTokenizer.from_pretrained(path)
        enc = tokenizer("Hello, how are you?", return_tensors="pt")
        with torch.inference_mode():
            out = model(**enc).logits
        if not torch.isfinite(out).all():
            return Check(name, False, f"{kind}: non-finite outputs")
        return Check(name, True, f"{kind} + tokenizer load; output shape {tuple(out.shape)}")
    except Exception as exc:  # any failure to load is what verify reports, as one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Check(name, False, f"{type(exc).__name__}: {first}")


def check_files(run_dir: Path) -> list[Check]:
    checks = []
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        checks.append(Check(str(metrics), False, "missing"))
    for path in sorted(run_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            checks.append(Check(str(path), True, f"JSON, {len(data)} top-level entries"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            checks.append(Check(str(path), False, f"invalid JSON: {exc}"))
    recipe = run_dir / "recipe.yaml"
    if recipe.is_file():
        from realm_cli.recipes import recipe as recipes
        from realm_cli.errors import RealmError

        try:
            loaded = recipes.load(str(recipe))
            checks.append(Check(str(recipe), True, f"valid {loaded.command} recipe"))
        except RealmError as exc:
            checks.append(Check(str(recipe), False, str(exc)))
    else:
        checks.append(Check(str(recipe), False, "missing"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    for path in sorted(run_dir.glob("*.png")):
        try:
            h, w = matplotlib.image.imread(path).shape[:2]
            checks.append(Check(str(path), True, f"PNG {w}x{h}"))
        except (OSError, ValueError, SyntaxError) as exc:
            checks.append(Check(str(path), False, f"unreadable PNG: {exc}"))
    return checks


def verify(run_dir: Path) -> list[Check]:
    if not run_dir.is_dir():
        return [Check(str(run_dir), False, "no such directory")]
    return check_files(run_dir) + [check_model(p) for p in model_dirs(run_dir)]
