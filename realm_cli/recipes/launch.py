"""Launching: single-process recipes run in-process; others re-enter realm through ``accelerate launch``."""

from __future__ import annotations


import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from realm_cli.config import ConfigError, printable
from realm_cli.errors import RealmError, excerpt


@dataclass
class LaunchConfig:
    accelerate_config: str = "cpu"  # a name in accelerate_configs/ or a path
    deepspeed_config: str | None = None  # a name in deepspeed_configs/ or a path
    num_processes: int | None = None  # overrides the accelerate config's count

    def check(self) -> None:
        config_path("accelerate_configs", self.accelerate_config, ".yaml")
        if self.deepspeed_config is not None:
            config_path("deepspeed_configs", self.deepspeed_config, ".json")
        if self.num_processes is not None and self.num_processes < 1:
            raise ConfigError("launch.num_processes: expected a positive integer")


def available(package_dir: str, suffix: str) -> list[str]:
    root = resources.files(f"realm_cli.recipes.{package_dir}")
    return sorted(p.name[: -len(suffix)] for p in root.iterdir() if p.name.endswith(suffix))


def config_path(package_dir: str, name: str, suffix: str) -> Path:
    """A shipped config by name (``zero3``) or an existing file path."""
    candidate = Path(name).expanduser()
    try:
        if candidate.suffix == suffix and candidate.is_file():
            return candidate.resolve()
        shipped = resources.files(f"realm_cli.recipes.{package_dir}") / f"{name}{suffix}"
        if shipped.is_file():
            return Path(str(shipped))
    except (OSError, ValueError):  # a name no file system can hold (too long, a NUL byte): not a config
        pass
    key = "launch.accelerate_config" if package_dir == "accelerate_configs" else "launch.deepspeed_config"
    raise ConfigError(f"{key}: no {package_dir[:-1].replace('_', ' ')} {excerpt(printable(name), 60)!r} "
                      f"(available: {', '.join(available(package_dir, suffix))}, or a path to a {suffix} file)")


def accelerate_settings(launch: LaunchConfig) -> dict:
    return yaml.safe_load(config_path("accelerate_configs", launch.accelerate_config, ".yaml").read_text()) or {}


def process_count(launch: LaunchConfig) -> int:
    return launch.num_processes or int(accelerate_settings(launch).get("num_processes", 1))


def needs_launcher(launch: LaunchConfig) -> bool:
    settings = accelerate_settings(launch)
    return (process_count(launch) > 1 or launch.deepspeed_config is not None
            or settings.get("distributed_type", "NO") not in ("NO", None))


def runs_on_cpu(launch: LaunchConfig) -> bool:
    """A CPU accelerate config: ``use_cpu: true`` (cpu, multi_cpu), or a name ending in ``cpu``
    (``deepspeed_cpu``, or a file such as ``my_fsdp_cpu.yaml``). The name is the marker because a DeepSpeed config
    cannot say ``use_cpu: true`` (accelerate then bypasses its DeepSpeed launcher) and accelerate refuses keys it
    does not know; DeepSpeed itself runs on its CPU accelerator wherever there is no CUDA."""
    stem = Path(launch.accelerate_config).name.removesuffix(".yaml")
    return bool(accelerate_settings(launch).get("use_cpu", False)) or stem.endswith("cpu")


def needs_gpu(launch: LaunchConfig) -> bool:
    if runs_on_cpu(launch):
        return False
    settings = accelerate_settings(launch)
    return launch.deepspeed_config is not None or settings.get("distributed_type", "NO") not in ("NO", "MULTI_CPU")


def build_command(command: list[str], recipe_ref: str, overrides: list[str], launch: LaunchConfig,
                  python: str = sys.executable) -> list[str]:
    """The argv that re-enters ``realm <command> --recipe REF`` under accelerate. Pure: no I/O beyond config lookup."""
    argv = [python, "-m", "accelerate.commands.launch",
            "--config_file", str(config_path("accelerate_configs", launch.accelerate_config, ".yaml"))]
    if launch.num_processes is not None:
        argv += ["--num_processes", str(launch.num_processes)]
    if launch.deepspeed_config is not None:
        argv += ["--use_deepspeed", "--deepspeed_config_file",
                 str(config_path("deepspeed_configs", launch.deepspeed_config, ".json"))]
    argv += ["--module", "realm_cli.cli", *command, "--recipe", recipe_ref, *overrides, "--launched"]
    return argv


def check_hardware(launch: LaunchConfig) -> None:
    """Fail before any work when the recipe needs GPUs this machine lacks."""
    if not needs_gpu(launch):
        return
    import torch

    have = torch.cuda.device_count()
    want = process_count(launch)
    what = f"DeepSpeed config {launch.deepspeed_config!r}" if launch.deepspeed_config else \
        f"accelerate config {launch.accelerate_config!r}"
    if have == 0:
        hint = "; or, with a small model, launch.accelerate_config=deepspeed_cpu launch.num_processes=2" \
            if launch.deepspeed_config else ""
        raise RealmError(f"this recipe's {what} needs CUDA GPUs and this machine has none "
                         f"(see the launch command with --dry-run, or run a cpu recipe{hint})")
    if have < want:
        raise RealmError(f"this recipe's {what} wants {want} GPU processes; this machine has {have} GPU(s) "
                         f"(set launch.num_processes={have} to scale down)")

