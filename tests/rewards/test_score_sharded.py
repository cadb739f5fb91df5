"""`realm score --num-processes N`: real processes through accelerate (2 CPU processes), each writing its shard, merged
in input order; a kill -9 of one worker and a rerun lose and duplicate nothing (compared with a 1-process run);
shards an interrupted run left are folded in by a rerun with another process count."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from realm_cli.cli import build_app


def write_rows(path: Path, n: int) -> Path:
    rows = [{"prompt": f"question {i} about rivers", "chosen": "a careful answer " * (1 + i % 4) + str(i),
             "rejected": f"no {i}", "id": i} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def reward_args(model: str) -> list[str]:
    return ["--reward", "bt", f"reward.model={model}", "reward.precision=fp32"]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_content(got: list[dict], want: list[dict]) -> None:
    assert [(r["line"], r["id"], r["input_sha"]) for r in got] == [(r["line"], r["id"], r["input_sha"]) for r in want]
    for g, w in zip(got, want):
        assert g["chosen_score"] == pytest.approx(w["chosen_score"], abs=1e-4)
        assert g["rejected_score"] == pytest.approx(w["rejected_score"], abs=1e-4)


def one_process(model: str, data: Path, out: Path) -> list[dict]:
    result = CliRunner().invoke(build_app(), ["score", *reward_args(model), "--input", str(data), "--output", str(out),
                                              "--json"])
    assert result.exit_code == 0, result.output
    return read(out)


def worker_pid(out: Path, rank: int) -> int | None:
    """The pid of the launched `realm score` process of this rank (found by its command line and RANK)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--launched" in cmd and str(out).encode() in cmd and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.distributed
def test_kill_9_of_a_worker_then_a_rerun_loses_and_duplicates_nothing(tmp_path, tiny_bert_dir):
    n = 600
    data = write_rows(tmp_path / "pairs.jsonl", n)
    reference = one_process(tiny_bert_dir, data, tmp_path / "one.jsonl")

    out = tmp_path / "two.jsonl"
    argv = [sys.executable, "-m", "realm_cli.cli", "score", *reward_args(tiny_bert_dir), "--input", str(data),
            "--output", str(out), "--num-processes", "2", "--batch-size", "1", "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    shard1 = tmp_path / "two.jsonl.shard-1-of-2.jsonl"
    run = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while complete_lines(shard1) < 5 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.01)
        pid = worker_pid(out, 1)
        assert pid is not None and run.poll() is None, "rank 1 never started scoring"
        os.kill(pid, signal.SIGKILL)
        killed_at = complete_lines(shard1)
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 2, stderr[-2000:]
    assert "rerun the same command to resume" in stderr
    assert 5 <= killed_at < n // 2, "the kill must land while rank 1 is half-way"
    assert not out.exists()  # nothing merged from a failed run
    # merging what a failed run left refuses, naming the lines no shard holds, and keeps everything as it is
    from realm_cli.errors import RealmError
    from realm_cli.rewards import score_io, shards

    kept = sorted(tmp_path.glob("two.jsonl.shard-*"))
    with pytest.raises(RealmError, match=r"input line\(s\) \d+"):
        shards.merge(score_io.plan_file(data, out), 2)
    assert sorted(tmp_path.glob("two.jsonl.shard-*")) == kept and not out.exists()
    # a process killed mid-write leaves half a line: the rerun must cut it and score that row again
    shard0 = tmp_path / "two.jsonl.shard-0-of-2.jsonl"
    with shard0.open("a") as fh:
        fh.write('{"prompt": "question 9')
    before = complete_lines(shard0) + complete_lines(shard1)

    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["rows"] == n and summary["still_failed"] == 0
    assert summary["resumed_past"] == before and summary["scored_now"] == n - before
    assert_same_content(read(out), reference)
    assert not list(tmp_path.glob("two.jsonl.shard-*")) and not list(tmp_path.glob("*.realm-tmp"))


def test_a_rerun_with_another_process_count_folds_the_shards_in(tmp_path, tiny_bert_dir):
    """Shards as a 3-process run leaves them when killed (some rows each, one half-written line) are resumed by a
    1-process rerun: only the missing rows are scored, and the output equals an uninterrupted run."""
    data = write_rows(tmp_path / "pairs.jsonl", 30)
    reference = one_process(tiny_bert_dir, data, tmp_path / "one.jsonl")
    out = tmp_path / "out.jsonl"
    lines = (tmp_path / "one.jsonl").read_text().splitlines(keepends=True)
    kept = 0
    for rank in range(3):
        mine = lines[rank::3][: 4 + rank]  # the first rows of each rank's slice
        kept += len(mine)
        tail = lines[rank::3][len(mine)][:25]
        (tmp_path / f"out.jsonl.shard-{rank}-of-3.jsonl").write_text("".join(mine) + tail)
    result = CliRunner().invoke(build_app(), ["score", *reward_args(tiny_bert_dir), "--input", str(data),
                                              "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["resumed_past"] == kept and summary["scored_now"] == 30 - kept
    assert_same_content(read(out), reference)
    assert not list(tmp_path.glob("out.jsonl.shard-*"))


def test_a_shard_of_another_input_is_refused_and_kept(tmp_path, tiny_bert_dir):
    data = write_rows(tmp_path / "pairs.jsonl", 6)
    shard = tmp_path / "out.jsonl.shard-0-of-2.jsonl"
    shard.write_text(json.dumps({"line": 1, "input_sha": "0" * 16, "chosen_score": 1.0}) + "\n")
    result = CliRunner().invoke(build_app(), ["score", *reward_args(tiny_bert_dir), "--input", str(data),
                                              "--output", str(tmp_path / "out.jsonl"), "--num-processes", "2"])
    assert result.exit_code == 2
    assert "out.jsonl.shard-0-of-2.jsonl:1" in result.output and "has changed" in result.output
    assert shard.exists() and not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("args, message", [
    (["--prompt", "p", "--response", "r", "--num-processes", "2"], "--num-processes shards an --input file"),
    (["--input", "X", "--output", "Y", "--launched", "--num-processes", "3"], "is one of 1 (WORLD_SIZE)"),
])
def test_bad_process_flags_are_one_line(tmp_path, args, message):
    data = write_rows(tmp_path / "pairs.jsonl", 2)
    args = [str(data) if a == "X" else str(tmp_path / "o.jsonl") if a == "Y" else a for a in args]
    result = CliRunner().invoke(build_app(), ["score", "--reward", "embedding", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
