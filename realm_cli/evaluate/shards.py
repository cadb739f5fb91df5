"""The evaluators' scoring shared out over the processes of a launched run (`realm eval ... --num-processes N`), and
resumable after a crash, in one or many processes.

An evaluator hands over its units (a unit: the (prompt, response) texts scored together, e.g. a pair's two sides, or
one distinct response) and gets back every unit's scores, in order, on the main process (None on the others, which
then stop: only rank 0 computes the metrics, writes the files and prints). Rank r of N scores the units at positions
i with i % N == r into ``OUTPUT_DIR/TAG.scores.shard-r-of-N.jsonl`` (rows ``{"i", "sha", "scores"}``, flushed per
batch); rank 0 then waits until the shards of all ranks cover every unit, merges them in unit order and removes
them. ``sha`` hashes the unit's texts with the reward block, so a rerun after a crash (any N) keeps exactly the scores
of the same texts by the same reward and scores the rest; a shard holding anything else (another reward, changed
data) is dropped and scored again, and a half-written last line is cut.

Rank 0 waits by reading the shard files rather than at a torch.distributed barrier: scoring needs no process group
(none is created), and a gloo/NCCL barrier would time out under a long, uneven shard; when a rank dies, the
launcher (torchrun) stops the others, so the wait cannot outlive a failed run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from realm_cli import distributed
from realm_cli.errors import RealmError
from realm_cli.rewards.shards import positions_of, shard_path, shards_of

POLL_SECONDS = 0.2


@dataclass
class Sharding:
    where: Path  # the evaluator's output directory
    tag: str  # names this scoring (evaluator, set) in the shard file names
    key: str  # what the scores depend on besides the texts: the reward block and its local files, as JSON

    def target(self) -> Path:
        return self.where / f"{self.tag}.scores"


def sharding(where: Path, tag: str, reward_spec) -> Sharding:
    from realm_cli.config import to_dict

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
    block = to_dict(reward_spec)
    return Sharding(where, safe, json.dumps([block, local_files(block)], sort_keys=True, default=str))


def local_files(block) -> list:
    """(path, size, mtime) of every file a reward block names on this machine (``reward.model=runs/rm`` and its
    weights): an RM retrained at the same path after a crashed evaluation changes the key, so its old scores are not
    reused. Folders are listed one level deep (a model directory's weights and configs)."""
    found = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value and len(value) < 4096:
            try:
                path = Path(value).expanduser()
                files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else \
                    [path] if path.is_file() else []
                for f in files:
                    st = f.stat()
                    found.append([str(f), st.st_size, st.st_mtime_ns])
            except (OSError, ValueError):  # not a path this file system can hold: a plain option value
                pass

    walk(block)
    return found


def unit_sha(key: str, unit: list[tuple]) -> str:
    text = json.dumps([key, unit], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _read(path: Path, shas: list[str]) -> tuple[dict[int, list[float]], bool, int]:
    """The valid rows of a shard (``i`` -> scores), whether every complete row was valid, and the byte count of a
    half-written last line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:  # removed meanwhile (rank 0 merged an earlier run's shards)
        return {}, True, 0
    complete = raw[: raw.rfind(b"\n") + 1]
    rows, clean = {}, True
    for line in complete.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            i, sha, scores = int(row["i"]), row["sha"], [float(s) for s in row["scores"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            clean = False
            continue
        if 0 <= i < len(shas) and shas[i] == sha:
            rows[i] = scores
        else:
            clean = False
    return rows, clean, len(raw) - len(complete)


def score_units(reward, units: list[list[tuple]], batch_size: int, where: Sharding, progress,
                label: str) -> list[list[float]] | None:
    """Every unit's scores (one per text, in order) on the main process; None on the other ranks. ``batch_size``
    units go to the reward per call, all their texts in that one call (batch-level rewards see both sides of a
    pair)."""
    rank, world = distributed.rank(), distributed.world_size()
    shas = [unit_sha(where.key, unit) for unit in units]
    own = shard_path(where.target(), rank, world)
    done, clean, tail = _read(own, shas) if own.exists() else ({}, True, 0)
    if not clean:  # another reward's or another data's scores: not a resumable shard of this run
        own.unlink()
        done, tail = {}, 0
    elif tail:
        with own.open("r+b") as fh:
            fh.truncate(own.stat().st_size - tail)
    mine = list(positions_of(rank, world, len(units)))
    for _, _, path in shards_of(where.target()):  # what other shards (an earlier run, another N) scored of mine
        if path != own:
            rows = _read(path, shas)[0]
            done.update({i: rows[i] for i in mine if i in rows and i not in done})
    todo = [i for i in mine if i not in done]
    task = progress.add_task(f"scoring {label}", total=len(mine), completed=len(mine) - len(todo))
    own.parent.mkdir(parents=True, exist_ok=True)
    with own.open("a", encoding="utf-8") as sink:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            texts = [text for i in chunk for text in units[i]]
            values = reward.score([p for p, _ in texts], [r for _, r in texts])
            if len(values) != len(texts):
                raise RealmError(f"reward returned {len(values)} scores for {len(texts)} responses")
            k = 0
            for i in chunk:
                scores = [float(v) for v in values[k:k + len(units[i])]]
                k += len(units[i])
                sink.write(json.dumps({"i": i, "sha": shas[i], "scores": scores}) + "\n")
            sink.flush()
            progress.advance(task, len(chunk))
    if not distributed.is_main_process():
        return None
    return _gather(where, shas)


def _gather(where: Sharding, shas: list[str]) -> list[list[float]]:
    """Rank 0: wait until the shards cover every unit, then merge them in unit order and remove them."""
    while True:
        found = shards_of(where.target())
        merged: dict[int, list[float]] = {}
        for _, _, path in found:
            merged.update(_read(path, shas)[0])
        if len(merged) == len(shas):
            break
        if distributed.world_size() == 1:  # nobody else to wait for: the shard lost rows (removed while scoring?)
            missing = [i for i in range(len(shas)) if i not in merged]
            raise RealmError(f"{where.target()}: the scores of units {missing[:8]} vanished from the shard; rerun")
        time.sleep(POLL_SECONDS)
    for _, _, path in found:
        path.unlink(missing_ok=True)
    return [merged[i] for i in range(len(shas))]
