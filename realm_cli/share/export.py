"""A run's model as a plain directory anyone loads with ``from_pretrained``: LoRA merged, tokenizer beside it, and a
model card saying what it is (base model, data, recipe, metrics, the exact command). ``push`` uploads that directory
to the Hugging Face hub (``huggingface_hub.upload_folder``), or writes it where a hub repository would be.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import yaml

from realm_cli.errors import RealmError

CARD = "README.md"


def model_dir(run_dir: Path) -> tuple[Path, str]:
    """The model folder of a run and its kind: an aligned policy (``policy/``) or a reward model (the run folder)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RealmError(f"{run_dir}: no such run directory")
    for folder, kind in ((run_dir / "policy", "policy"), (run_dir, "reward-model")):
        if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
            return folder, kind
    raise RealmError(f"{run_dir}: holds no model (no config.json or adapter_config.json, nor policy/); export takes "
                     f"the output directory of `realm train-rm` or `realm align`")


def _merged(folder: Path, kind: str):
    """(model, tokenizer) with any LoRA adapter merged in, loaded the way realm loads it (aliases offline)."""
    if kind == "reward-model":
        from realm_cli.rewards import rm

        loaded = rm.load(str(folder), device="cpu", dtype="float32")
        return loaded.model, loaded.tokenizer
    from transformers import AutoTokenizer

    from realm_cli import models

    tokenizer = AutoTokenizer.from_pretrained(folder)
    adapter = folder / "adapter_config.json"
    if adapter.is_file() and not (folder / "config.json").is_file():
        from peft import PeftModel

        base = json.loads(adapter.read_text())["base_model_name_or_path"]
        model = PeftModel.from_pretrained(models.load_causal_lm(base, dtype="float32"), folder).merge_and_unload()
    else:
        model = models.load_causal_lm(str(folder), dtype="float32")
    return model, tokenizer


def card(run_dir: Path, kind: str) -> str:
    """The model card: YAML front matter the hub reads, then what the run was and how well it did."""
    recipe_path, metrics_path = run_dir / "recipe.yaml", run_dir / "metrics.json"
    recipe = yaml.safe_load(recipe_path.read_text()) if recipe_path.is_file() else {}
    header = recipe_path.read_text().splitlines()[0].lstrip("# ").strip() if recipe_path.is_file() else ""
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    base = (recipe.get("model") or {}).get("name", "unknown")
    data = [d.get("name") if isinstance(d, dict) else str(d) for d in ((recipe.get("data") or {}).get("train") or [])]
    front = {"library_name": "transformers", "tags": ["realm", kind], "base_model": base}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             f"# {run_dir.name}", "",
             f"A {'reward model (Bradley-Terry, one logit: higher is better)' if kind == 'reward-model' else 'policy'}"
             f" trained with [realm](https://pypi.org/project/realm-cli/).", "",
             f"- base model: `{base}`", f"- training data: {', '.join(f'`{d}`' for d in data) or 'see the recipe'}",
             f"- command: `{header}`" if header else "- command: unknown", "", "## Metrics", "", "```json",
             json.dumps(metrics, indent=2, default=str)[:20000], "```", "", "## Recipe", "", "```yaml",
             yaml.safe_dump(recipe, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)


def export(run_dir: Path, out_dir: Path) -> Path:
    """Write the run's model to ``out_dir`` (which must not exist, or be empty): merged, with tokenizer and card."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    folder, kind = model_dir(run_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RealmError(f"{out_dir}: exists and is not an empty directory; realm writes exports into a new one")
    model, tokenizer = _merged(folder, kind)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    for extra in ("realm_rm.json",):
        if (folder / extra).is_file():
            info = json.loads((folder / extra).read_text())
            info["lora"] = False  # merged
            (out_dir / extra).write_text(json.dumps(info, indent=2) + "\n")
    for extra in ("recipe.yaml", "metrics.json"):
        if (run_dir / extra).is_file():
            shutil.copyfile(run_dir / extra, out_dir / extra)
    (out_dir / CARD).write_text(card(run_dir, kind))
    return out_dir


def push(run_dir: Path, repo_id: str, *, local_dir: Path | None = None, private: bool = False) -> str:
    """Export the run and upload it as hub repository ``repo_id``; with ``local_dir``, write it to
    ``local_dir/repo_id`` instead (what the repository would hold, for a check or an offline mirror)."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise RealmError(f"{repo_id!r}: a hub repository id is OWNER/NAME")
    if local_dir is not None:
        return str(export(run_dir, Path(local_dir) / repo_id))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with tempfile.TemporaryDirectory() as tmp:
        folder = export(run_dir, Path(tmp) / "export")
        api = HfApi()
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=f"realm: {Path(run_dir).name}")
        except (HfHubHTTPError, OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RealmError(f"push to {repo_id} failed: {first}") from None
    return f"https://huggingface.co/{repo_id}"
