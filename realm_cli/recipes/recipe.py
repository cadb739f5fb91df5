"""Recipes: YAML files validated strictly into a ``Recipe`` before any heavy import."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from realm_cli import plugins
from realm_cli.config import ConfigError, PluginSpec, from_dict, merge, parse_overrides, plugin_field, to_dict
from realm_cli.data.load import DataConfig
from realm_cli.errors import RealmError
from realm_cli.recipes.launch import LaunchConfig

COMMANDS = ("train-rm", "align", "eval", "pipeline")


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    quantization: Literal["none", "4bit", "8bit"] = "none"  # 4bit/8bit = QLoRA through bitsandbytes


@dataclass
class ModelConfig:
    name: str  # alias (see `realm models list`), local path, or hub id
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    revision: str | None = None
    lora: LoraConfig | None = None
    gradient_checkpointing: bool = False


@dataclass
class PipelineStep:
    run: Literal["train-rm", "align", "eval", "verify", "report"]
    recipe: str | None = None
    overrides: list[str] = field(default_factory=list)


@dataclass
class Recipe:
    command: Literal["train-rm", "align", "eval", "pipeline"]
    description: str = ""
    output_dir: str = "runs/{name}"
    seed: int = 42
    model: ModelConfig | None = None
    data: DataConfig | None = None
    trainer: PluginSpec | None = plugin_field("trainer", default=None)
    reward: PluginSpec | None = plugin_field("reward", default=None)
    evaluators: list[PluginSpec] = plugin_field("evaluator", default_factory=list)
    steps: list[PipelineStep] = field(default_factory=list)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    name: str = field(default="", init=False)
    source: str = field(default="", init=False)
    header: str = field(default="", init=False)

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))


def _plugin_config(kind: str, name: str, path: str):
    try:
        obj = plugins.registry().get(kind, name).obj
    except RealmError as exc:
        raise ConfigError(f"{path}.name: {exc}") from None
    return getattr(obj, "Config")


def find(ref: str) -> Path:
    """A registered recipe name, or a path to a YAML file."""
    reg = plugins.registry()
    if ref in reg.names("recipe"):
        return Path(str(reg.get("recipe", ref).obj))
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise RealmError(f"recipe file {ref} does not exist")
        return path
    reg.get("recipe", ref)  # raises with close matches
    raise AssertionError("unreachable")


HEADER = re.compile(r"^#\s*(realm\s+\S+.*)$")


def read(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text.strip() else ""
    match = HEADER.match(first)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RealmError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RealmError(f"{path}: a recipe must be a YAML mapping")
    return raw, match.group(1).strip() if match else ""


def load(ref: str, overrides: list[str] | None = None) -> Recipe:
    """Find, read, apply dotted overrides and validate; every error names the file and key path."""
    path = find(ref)
    raw, header = read(path)
    try:
        recipe = from_dict(Recipe, merge(raw, parse_overrides(overrides or [])), resolver=_plugin_config)
        recipe.launch.check()
    except ConfigError as exc:
        raise RealmError(f"{path}: {exc}") from None
    recipe.name = path.stem
    recipe.source = str(path)
    recipe.header = header
    if not header:
        raise RealmError(f"{path}: the first line must be a comment with the command that runs it, "
                         f"e.g. '# realm {recipe.command} --recipe {path.stem}'")
    return recipe


def save_resolved(recipe: Recipe, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / "recipe.yaml"
    # name/source/header are set by load(), not read from YAML: leave them out so the file loads back as a recipe
    data = {k: v for k, v in to_dict(recipe).items() if k not in ("name", "source", "header")}
    body = yaml.safe_dump(data, sort_keys=False)
    out.write_text(f"# {recipe.header}\n# resolved from {recipe.source}\n{body}", encoding="utf-8")
    return out
