"""`realm eval` in several processes: preference, reward-bench and rm-bench share out their scoring over 2 real CPU
processes (accelerate), rank 0 merges, and the metrics equal a 1-process run of the same recipe; `--json` prints
what metrics.json holds; a killed evaluation resumes from its shard."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from realm_cli.cli import build_app
from realm_cli.recipes import launch

TOPICS = ["rivers", "tea", "chess", "maps", "jazz"]


def write_pairs(path: Path, n: int, seed: int) -> Path:
    rows = [{"prompt": f"Tell me about {TOPICS[(i + seed) % 5]} ({i})", "chosen": "A kind, clear answer. " * (1 + i % 3),
             "rejected": "No." if i % 2 else "Go away, " * (1 + i % 4), "id": f"p{i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_reward_bench(path: Path) -> Path:
    subsets = ["llmbar-natural", "llmbar-adver-manual", "refusals-dangerous"]
    rows = [{"id": i, "subset": subsets[i % 3], "prompt": f"Question {i} on {TOPICS[i % 5]}",
             "chosen": "Here is a careful answer. " * (1 + i % 2), "rejected": f"Wrong {i}"} for i in range(24)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_rm_bench(path: Path) -> Path:
    styles = ("short", "long answer, in detail", "**long answer**, in *markdown*")
    rows = [{"id": f"i{n}", "prompt": f"Item {n} on {TOPICS[n % 5]}", "domain": ["chat", "math", "code", "safety"][n % 4],
             "chosen": [f"Right {n}: {s}" for s in styles], "rejected": [f"Wrong {n}: {s}" for s in styles]}
            for n in range(8)]
    path.write_text(json.dumps(rows))
    return path


def free_port_config(tmp_path: Path) -> Path:
    """The shipped multi_cpu accelerate config on port 0 (a free one): runs on one machine never meet."""
    settings = yaml.safe_load(launch.config_path("accelerate_configs", "multi_cpu", ".yaml").read_text())
    path = tmp_path / "multi_cpu_free_port.yaml"
    path.write_text(yaml.safe_dump({**settings, "main_process_port": 0}))
    return path


def write_recipe(tmp_path: Path, model: str) -> Path:
    def common():  # a fresh dict each time: yaml would write a shared one as an alias, which recipes refuse
        return {"reward": {"name": "bt", "model": model, "precision": "fp32"}, "batch_size": 4, "ci_resamples": 200}

    recipe = {
        "command": "eval", "output_dir": str(tmp_path / "two"),
        "launch": {"accelerate_config": str(free_port_config(tmp_path)), "num_processes": 2},
        "evaluators": [
            {"name": "preference", **common(), "plot": False,
             "sets": {"first": [{"name": "preference", "path": str(write_pairs(tmp_path / "a.jsonl", 21, 0))}],
                      "second": [{"name": "preference", "path": str(write_pairs(tmp_path / "b.jsonl", 10, 3))}]}},
            {"name": "reward-bench", **common(), "plot": False, "protocol": "v1",
             "data": [{"name": "reward-bench", "path": str(write_reward_bench(tmp_path / "rb.jsonl"))}]},
            {"name": "rm-bench", **common(),
             "data": [{"name": "rm-bench", "path": str(write_rm_bench(tmp_path / "rmb.json"))}]},
        ]}
    path = tmp_path / "evals.yaml"
    path.write_text(f"# realm eval --recipe {path}\n" + yaml.safe_dump(recipe, sort_keys=False))
    return path


def assert_close(got, want, where="metrics"):
    """Numbers within float tolerance (scores come from other batch shapes), everything else exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-6), where
    else:
        assert got == want, where


def strict(metrics):
    """metrics.json as --json prints it: NaN as null."""
    return json.loads(json.dumps(metrics).replace("NaN", "null"))


@pytest.mark.distributed
def test_two_processes_give_the_metrics_of_one(tmp_path, tiny_bert_dir):
    recipe = write_recipe(tmp_path, tiny_bert_dir)
    one = CliRunner().invoke(build_app(), ["eval", "--recipe", str(recipe), "launch.num_processes=1",
                                           "launch.accelerate_config=cpu", f"output_dir={tmp_path / 'one'}"])
    assert one.exit_code == 0, one.output
    reference = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert set(reference) == {"preference", "reward-bench", "rm-bench"}

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "realm_cli.cli", "eval", "--recipe", str(recipe), "--json"],
                         capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    printed = json.loads(run.stdout)  # stdout is the one JSON object; tables and progress go to stderr
    assert printed["schema"] == "realm.eval.v1" and printed["output_dir"] == str(tmp_path / "two")
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert printed["metrics"] == strict(two)
    assert_close(two, reference)
    assert two["preference"]["first"]["pairs"] == 21 and two["reward-bench"]["pairs"] == 24
    assert two["rm-bench"]["items"] == 8
    # per pair, in input order, from whichever rank scored it
    for name in ("preference.json", "reward_bench.json", "rm_bench.json"):
        assert_close(json.loads((tmp_path / "two" / name).read_text()),
                     json.loads((tmp_path / "one" / name).read_text()), name)
    assert run.stderr.count("RewardBench (reward-bench-v1)") == 1  # rank 0 alone prints
    assert not list((tmp_path / "two").glob("*.shard-*"))


def test_a_killed_evaluation_resumes_from_its_shard(tmp_path, tiny_bert_dir):
    """kill -9 while the pairs are being scored, rerun: the scores already written are used as they are (a marked one
    shows through), the rest scored, every pair as an uninterrupted run has it."""
    data = write_pairs(tmp_path / "pairs.jsonl", 240, 0)
    args = ["eval", "preference", "--reward", "bt", "--data", f"pairs={data}", f"reward.model={tiny_bert_dir}",
            "batch_size=1", "plot=false", "ci_resamples=200"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "killed"
    shard = out / "preference-0-pairs.scores.shard-0-of-1.jsonl"
    run = subprocess.Popen([sys.executable, "-m", "realm_cli.cli", *args, "-o", str(out)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while (not shard.exists() or shard.read_bytes().count(b"\n") < 5) and time.monotonic() < deadline \
                and run.poll() is None:
            time.sleep(0.01)
        assert run.poll() is None, "the evaluation ended before it could be killed"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    lines = shard.read_text().splitlines(keepends=True)
    assert 5 <= len(lines) < 240 and not (out / "metrics.json").exists()
    marked = {**json.loads(lines[0]), "scores": [123.0, -123.0]}  # what the rerun must take from the shard
    shard.write_text(json.dumps(marked) + "\n" + "".join(lines[1:]))

    again = CliRunner().invoke(build_app(), [*args, "-o", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["metrics"]["preference"]["pairs"]["pairs"] == 240
    fresh = CliRunner().invoke(build_app(), [*args, "-o", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0, fresh.output
    resumed = json.loads((out / "preference.json").read_text())["per_pair"]["pairs"]
    want = json.loads((tmp_path / "fresh" / "preference.json").read_text())["per_pair"]["pairs"]
    assert (resumed[0]["chosen"], resumed[0]["rejected"]) == (123.0, -123.0)
    assert_close(resumed[1:], want[1:])
    assert not shard.exists()


def test_scores_kept_from_a_crash_are_not_reused_for_an_rm_retrained_at_the_same_path(tmp_path):
    from realm_cli.evaluate import shards

    model = tmp_path / "rm"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"first weights")
    spec = {"name": "bt", "model": str(model)}
    before = shards.sharding(tmp_path, "t", spec).key
    assert shards.sharding(tmp_path, "t", spec).key == before  # nothing changed: the shard is reused
    (model / "model.safetensors").write_bytes(b"retrained weights")
    assert shards.sharding(tmp_path, "t", spec).key != before
    alias = {"name": "bt", "model": "minilm"}  # not a path here: the block alone is the key
    assert shards.sharding(tmp_path, "t", alias).key == shards.sharding(tmp_path, "t", alias).key
