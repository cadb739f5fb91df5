"""Sharding across processes: `realm score --num-processes N` (and, through realm_cli.evaluate.shards, the scoring
of `realm eval`), launched with ``accelerate launch``.

Rank r of N takes the records at input positions i with i % N == r and writes what it scores into its own JSONL
shard beside the output, ``OUT.shard-r-of-N.jsonl``, in the resumable format of `realm score` (every row carries
its input line and the hash of the input row it scored). Nothing is shared while scoring, so no process group is
set up: accelerate (torchrun) starts the processes, numbers them (RANK, WORLD_SIZE) and, when one dies, stops the
others. After every rank exited 0, the parent process merges: the output and the shards, the latest row per input
line, written in input order through a temporary file; every input line must be there (an error naming the missing
ones otherwise, the shards kept), and then the shards go.

Crash safety: before it starts processes the parent folds whatever shards an interrupted run left (of any N) into
the output the same way (without requiring completeness), so a rerun with the same or another N resumes from every
row any process wrote; a half-written last line is cut and scored again.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from realm_cli import distributed
from realm_cli.errors import RealmError
from realm_cli.rewards import score_io

SHARD = re.compile(r"\.shard-(\d+)-of-(\d+)\.jsonl")


def shard_path(target: Path, rank: int, world: int) -> Path:
    return target.with_name(f"{target.name}.shard-{rank}-of-{world}.jsonl")


def shards_of(target: Path) -> list[tuple[int, int, Path]]:
    """``(world, rank, path)`` of every shard file of ``target`` on disk, of any process count, sorted."""
    found = []
    if target.parent.is_dir():
        for path in target.parent.iterdir():
            if path.name.startswith(target.name + ".shard-"):
                match = SHARD.fullmatch(path.name[len(target.name):])
                if match:
                    found.append((int(match[2]), int(match[1]), path))
    return sorted(found)


def positions_of(rank: int, world: int, count: int) -> range:
    """The input positions rank ``rank`` of ``world`` scores: every world-th one, starting at its rank."""
    return range(rank, count, world)


def ranges(numbers: list[int], shown: int = 8) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (the first ``shown`` runs, then how many more)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs[:shown])
    return text + (f" and {len(runs) - shown} more ranges" if len(runs) > shown else "")


def accelerate_command(args: list[str], num_processes: int) -> list[str]:
    """The argv that re-enters ``realm ARGS --launched`` in ``num_processes`` processes: one per GPU when there are
    enough, else CPU processes (the shipped multi_cpu config, torchrun over gloo). Port 0: accelerate picks a free
    port, so two runs on one machine never meet."""
    from realm_cli.recipes import launch

    return [sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(launch.config_path("accelerate_configs", accelerate_config(num_processes), ".yaml")),
            "--num_processes", str(num_processes), "--main_process_port", "0",
            "--module", "realm_cli.cli", *args, "--launched"]


def accelerate_config(num_processes: int) -> str:
    """The shipped accelerate config for N processes on this machine: multi_gpu with a GPU each, else multi_cpu."""
    import torch

    return "multi_gpu" if torch.cuda.device_count() >= num_processes else "multi_cpu"


def bind_device() -> None:
    """Under a launcher with GPUs, make "cuda" mean this process's own GPU (LOCAL_RANK), so the rewards' default
    device spreads the ranks over the GPUs instead of stacking them all on GPU 0."""
    if distributed.world_size() == 1:
        return
    import torch

    local = int(os.environ.get("LOCAL_RANK", distributed.rank()))
    if torch.cuda.is_available() and local < torch.cuda.device_count():
        torch.cuda.set_device(local)


def check_launched(num_processes: int) -> None:
    if distributed.world_size() != num_processes:
        raise RealmError(f"--launched with --num-processes {num_processes}, but this process is one of "
                         f"{distributed.world_size()} (WORLD_SIZE): realm sets --launched itself; run without it")


# --- realm score -------------------------------------------------------------------------------------------------
def _collect(plan: score_io.FilePlan, shards: list[tuple[int, int, Path]], world: int | None) -> dict[int, dict]:
    """The latest row per input line over the output and ``shards`` (a shard supersedes the output: it is newer),
    every row checked against the input; with ``world``, each shard must hold only lines of its own slice."""
    by_line = dict(plan.rows)
    position = {n: i for i, (n, _) in enumerate(plan.rows)}
    latest: dict[int, dict] = {}
    if plan.output_path.exists():
        latest.update(score_io.read_output(plan.output_path, by_line, plan.input_path)[0])
    for shard_world, rank, path in shards:
        rows = score_io.read_output(path, by_line, plan.input_path, shard=True)[0]
        if world is not None:
            stray = sorted(n for n in rows if position[n] % shard_world != rank)
            if stray:
                raise RealmError(f"{path}: holds input line(s) {ranges(stray)}, which belong to other shards: it was "
                                 f"not written by rank {rank} of {shard_world}; remove it and rerun")
        latest.update(rows)
    return latest


def fold(plan: score_io.FilePlan) -> bool:
    """Before a run: the shards an earlier, interrupted run left (of any process count) go into the output, in input
    order, and are removed; returns whether there were any. The output is written (atomically) before any shard
    goes, so an interruption here loses nothing either."""
    found = shards_of(plan.output_path)
    if not found:
        return False
    latest = _collect(plan, found, None)
    score_io.write_in_order(plan.output_path, latest, [n for n, _ in plan.rows])
    for *_, path in found:
        path.unlink()
    return True


def rank_plan(input_path: Path, output_path: Path, *, retry_failed: bool) -> score_io.FilePlan:
    """This rank's plan: its slice of the input, what the output already holds for it, and what its own shard holds
    (written by an earlier run of this very rank), scored on into its shard."""
    rank, world = distributed.rank(), distributed.world_size()
    whole = score_io.plan_file(input_path, output_path, retry_failed=retry_failed)
    mine = [whole.rows[i] for i in positions_of(rank, world, len(whole.rows))]
    shard = score_io.plan_file(input_path, shard_path(output_path, rank, world), retry_failed=retry_failed,
                               rows=mine, shard=True)
    lines = {n for n, _ in mine}
    shard.done = {**{n: r for n, r in whole.done.items() if n in lines}, **shard.done}
    return shard


def launch_and_merge(plan: score_io.FilePlan, args: list[str], num_processes: int) -> int:
    """Run ``realm score ARGS`` in ``num_processes`` processes, then merge their shards into the output; returns
    how many scores the processes left NaN."""
    import subprocess

    code = subprocess.call(accelerate_command(args, num_processes))
    if code != 0:
        raise RealmError(f"a scoring process exited with status {code}; what every process scored is kept in "
                         f"{plan.output_path.name}.shard-*-of-{num_processes}.jsonl: rerun the same command to "
                         f"resume")
    latest = merge(plan, num_processes)
    return sum(1 for n, _ in plan.todo for name in score_io.score_names(latest[n]) if latest[n].get(name) is None)


def merge(plan: score_io.FilePlan, world: int) -> dict[int, dict]:
    """The output and the shards of a ``world``-process run -> the output, one row per input line in input order;
    every input line must have its row (else an error naming the missing lines, everything kept as it is). Returns
    the merged rows by input line."""
    shards = [(w, r, p) for w, r, p in shards_of(plan.output_path) if w == world]
    latest = _collect(plan, shards, world)
    missing = [n for n, _ in plan.rows if n not in latest]
    if missing:
        raise RealmError(f"{plan.output_path}: input line(s) {ranges(missing)} have no row in the output or its "
                         f"{world} shards (kept as they are); rerun to score them")
    score_io.write_in_order(plan.output_path, latest, [n for n, _ in plan.rows])
    for *_, path in shards:
        path.unlink()
    return latest
