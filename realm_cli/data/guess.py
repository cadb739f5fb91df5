"""Turn a command-line ``NAME|PATH key=value ...`` into a dataset ``PluginSpec``, guessing the plugin from a file."""

from __future__ import annotations

from pathlib import Path

from realm_cli.config import ConfigError, PluginSpec, from_dict, parse_overrides
from realm_cli.data.files import ReadError, read_rows
from realm_cli.errors import RealmError

# First row's keys -> plugin, most specific first.
SIGNATURES: list[tuple[set[str], str]] = [
    ({"annotator1", "annotator2", "annotator3", "response1", "response2"}, "pandalm"),
    ({"question", "mc1_targets", "mc2_targets"}, "truthfulqa"),
    ({"question_id", "model_a", "model_b", "winner", "conversation_a", "conversation_b"}, "mt-bench-human"),
    ({"input", "output_1", "output_2", "label"}, "llmbar"),
    ({"history", "human_ref_A", "human_ref_B", "labels"}, "shp"),
    ({"context", "completions"}, "nemo-rank"),
    ({"context", "response1", "response2", "overall_preference"}, "helpsteer3"),
    ({"prompt", "chosen", "rejected", "score_chosen", "score_rejected"}, "ultrafeedback-binarized"),
    ({"prompt", "chosen", "rejected", "chosen_rating", "rejected_rating"}, "tulu3-preference"),
    ({"prompt", "chosen", "rejected", "chosen_model", "rejected_model", "subset", "id"}, "reward-bench"),
    ({"prompt", "chosen", "rejected", "num_correct", "num_incorrect", "subset", "id"}, "reward-bench"),  # v2
]


def guess_plugin(path: Path) -> str:
    """The dataset plugin that reads ``path``, judged by its layout or its first record's keys."""
    if path.is_dir():
        if (path / "mc_task.json").exists():
            return "truthfulqa"
        if (path / "Natural").is_dir() and (path / "Adversarial").is_dir():
            return "llmbar"
    if path.name == "mc_task.json":
        return "truthfulqa"
    first = None
    for item in read_rows(path):
        if not isinstance(item, ReadError):
            first = item[1]
        break
    if first is None:
        return "preference"  # its own errors say what is wrong with the file
    keys = set(first)
    for signature, name in SIGNATURES:
        if signature <= keys:
            if name == "llmbar" and path.parent.name == "MT-Bench":
                return "mt-bench-human"
            return name
    chosen, rejected = first.get("chosen"), first.get("rejected")
    if isinstance(chosen, list) and isinstance(rejected, list) and chosen and isinstance(chosen[0], dict) \
            and chosen[0].get("role") in ("system", "user"):
        return "rlhflow"  # whole conversations (an explicit prompt column, if any, repeats their first turns)
    if isinstance(chosen, str) and chosen.startswith("\n\nHuman:") and "prompt" not in keys:
        return "hh-rlhf"
    return "preference"


def spec_from_args(target: str, options: list[str] | None = None) -> PluginSpec:
    """``hh-rlhf subset=harmless-base`` or ``data/pairs.jsonl prompt_key=q``: a validated PluginSpec."""
    from realm_cli import plugins

    registry = plugins.registry()
    raw = parse_overrides(options or [])
    if target in registry.names("dataset"):
        name = target
    else:
        path = Path(target).expanduser()
        if not path.exists():
            try:
                registry.get("dataset", target)
            except RealmError as exc:
                raise RealmError(f"{target}: no such file, and {exc}") from None
        if "path" in raw:
            raise RealmError(f"{target}: give the file either as NAME|PATH or as path=..., not both")
        name = guess_plugin(path)
        raw["path"] = str(path)
    cls = plugins.lookup("dataset", name)
    try:
        return PluginSpec(name, from_dict(cls.Config, raw, f"dataset {name}"))
    except ConfigError as exc:
        raise RealmError(str(exc)) from None
