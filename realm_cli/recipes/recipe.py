"""Recipes: YAML files (or blocks built by a command's flags) validated strictly before any heavy import.

Each command has its own schema (``SCHEMAS``): a train-rm recipe must name its trainer, an eval recipe at least one
evaluator, a pipeline its steps, and a block that belongs to another command is an unknown key. The trainer and
evaluator plugins a recipe names must serve its command. All of this fails at validation, naming the file and key.
"""

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
VERBS = {"train-rm": "train-rm", "align": "align", "eval": "eval", "pipeline": "run"}  # the realm command of each


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


@dataclass(kw_only=True)
class Recipe:
    """What every recipe has; each command's schema below adds its own blocks."""

    command: Literal["train-rm", "align", "eval", "pipeline"]
    description: str = ""
    output_dir: str = "runs/{name}"
    seed: int = 42
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    name: str = field(default="", init=False)
    source: str = field(default="", init=False)
    header: str = field(default="", init=False)

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))


@dataclass(kw_only=True)
class TrainRmRecipe(Recipe):
    model: ModelConfig | None = None  # the bt trainer needs one; the linear combiner trains on reward features
    data: DataConfig
    trainer: PluginSpec = plugin_field("trainer")


@dataclass(kw_only=True)
class AlignRecipe(Recipe):
    model: ModelConfig | None = None  # None: the trainer's default policy
    data: DataConfig | None = None  # prompts (or, for offline DPO, pairs); trainers may take prompts inline
    trainer: PluginSpec = plugin_field("trainer")
    reward: PluginSpec | None = plugin_field("reward", default=None)


@dataclass(kw_only=True)
class EvalRecipe(Recipe):
    evaluators: list[PluginSpec] = plugin_field("evaluator")

    def __post_init__(self):
        if not self.evaluators:
            raise ConfigError("evaluators: at least one evaluator is required, e.g. [{name: reward-bench}]")


@dataclass(kw_only=True)
class PipelineRecipe(Recipe):
    steps: list[PipelineStep]

    def __post_init__(self):
        if not self.steps:
            raise ConfigError("steps: a pipeline needs at least one step")


SCHEMAS: dict[str, type[Recipe]] = {"train-rm": TrainRmRecipe, "align": AlignRecipe, "eval": EvalRecipe,
                                    "pipeline": PipelineRecipe}


def jobs(recipe: Recipe) -> list[tuple[str, PluginSpec]]:
    """(plugin kind, spec) of the trainer or evaluators a recipe runs, in order."""
    if isinstance(recipe, EvalRecipe):
        return [("evaluator", spec) for spec in recipe.evaluators]
    if isinstance(recipe, (TrainRmRecipe, AlignRecipe)):
        return [("trainer", recipe.trainer)]
    return []


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
RESOLVED = re.compile(r"^#\s*resolved from (.+?)(?: \(recipe (\S+)\))?$")  # the second line of a run's recipe.yaml


def read(path: Path) -> tuple[dict, str]:
    from realm_cli.config import load_yaml, yaml_error

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RealmError(f"{path}: not UTF-8 text (byte {exc.start}); a recipe is a YAML file") from None
    except OSError as exc:
        raise RealmError(f"{path}: {exc.strerror}") from None
    first = text.splitlines()[0] if text.strip() else ""
    match = HEADER.match(first)
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        line, reason = yaml_error(exc)
        raise RealmError(f"{path}:{line}: invalid YAML: {reason}" if line else f"{path}: invalid YAML: {reason}") \
            from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RealmError(f"{path}: a recipe must be a YAML mapping")
    return raw, match.group(1).strip() if match else ""


def build(raw: dict, overrides: list[str] | None = None, *, source: str, name: str, header: str) -> Recipe:
    """Validate a recipe given as data (read from ``source``, or built by a command's flags) against the schema of
    its command; every error is one line ``SOURCE: key.path: ...``."""
    try:
        data = merge(raw, parse_overrides(overrides or []))
        if "command" not in data:
            raise ConfigError(f"command: required (one of {', '.join(COMMANDS)})")
        command = data["command"]
        if not isinstance(command, str) or command not in SCHEMAS:
            raise ConfigError(f"command: expected one of {', '.join(map(repr, COMMANDS))}, got {command!r}")
        recipe = from_dict(SCHEMAS[command], data, resolver=plugins.config_class)
        recipe.launch.check()
        _check_jobs(recipe)
    except ConfigError as exc:
        raise RealmError(f"{source}: {exc}") from None
    recipe.name, recipe.source, recipe.header = name, source, header
    return recipe


def _check_jobs(recipe: Recipe) -> None:
    for i, (kind, spec) in enumerate(jobs(recipe)):
        serves = getattr(plugins.lookup(kind, spec.name), "commands", ())
        if recipe.command not in serves:
            key = "trainer" if kind == "trainer" else f"evaluators[{i}]"
            raise ConfigError(f"{key}.name: {kind} {spec.name!r} serves `realm {'`, `realm '.join(serves) or '?'}`, "
                              f"not `realm {recipe.command}`")


def load(ref: str, overrides: list[str] | None = None) -> Recipe:
    """Find, read, apply dotted overrides and validate; every error names the file and key path."""
    path = find(ref)
    raw, header = read(path)
    recipe = build(raw, overrides, source=str(path), name=file_name(path), header=header)
    if not header:
        raise RealmError(f"{path}: the first line must be a comment with the command that runs it, "
                         f"e.g. '# realm {VERBS[recipe.command]} --recipe {path.stem}'")
    return recipe


def file_name(path: Path) -> str:
    """The file's stem; a run's resolved recipe.yaml keeps the name of the recipe it was resolved from."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:2]
    match = RESOLVED.match(lines[0]) if lines else None
    if match is None:
        return path.stem
    return match.group(2) or Path(match.group(1)).stem


def resolved_text(recipe: Recipe) -> str:
    """The recipe as a YAML file that loads back to the same recipe (header line first, output_dir resolved)."""
    # name/source/header are set by build(), not read from YAML: the two comment lines carry them
    data = {k: v for k, v in to_dict(recipe).items() if k not in ("name", "source", "header")}
    data["output_dir"] = str(recipe.resolved_output_dir())
    body = yaml.safe_dump(data, sort_keys=False)
    return f"# {recipe.header}\n# resolved from {recipe.source} (recipe {recipe.name})\n{body}"


def save_resolved(recipe: Recipe, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / "recipe.yaml"
    if Path(recipe.source).resolve() != out.resolve():  # a launched re-entry runs the file itself: keep it
        out.write_text(resolved_text(recipe), encoding="utf-8")
    return out
