"""Which process this is under ``accelerate launch`` (torchrun sets RANK and WORLD_SIZE); one process otherwise."""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return rank() == 0
