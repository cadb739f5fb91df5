"""The transfer report of train-rm: every validation accuracy with its 95% interval, the length baselines on the same
pairs, whether each set's source (and which of its pairs) was trained on, the PNG's transfer panel, and the
train-source x eval-set benchmark run end to end on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console
from support.rm_helpers import write_pairs, write_recipe
from support.shared import REPO, shared_file

from realm_cli.contracts import PreferenceRecord


def rec(source, i, chosen, rejected, file="a.jsonl", subset=None):
    return PreferenceRecord(prompt=[{"role": "user", "content": f"question {i}?"}], chosen=chosen, rejected=rejected,
                            source=source, id=f"{file}:{i}", meta={"subset": subset} if subset else {})


def test_sets_carry_intervals_length_baselines_and_what_was_trained_on(tiny_bert_dir):
    from realm_cli.evaluate.transfer import seen_in_training
    from realm_cli.rewards import rm as rmlib
    from realm_cli.train.metrics import evaluate_sets

    train = [rec("preference", i, "a" * (i + 2), "b") for i in range(6)]
    # chosen/rejected lengths 5/2, 1/4, 3/3, 6/2: longer wins on 1 and 4, shorter on 2, pair 3 a length tie
    other = [rec("preference", 10 + i, "c" * c, "d" * r, file="b.jsonl")
             for i, (c, r) in enumerate([(5, 2), (1, 4), (3, 3), (6, 2)])]
    held = [rec("preference", 20 + i, "a" * (i + 3), "bb") for i in range(3)]  # the train file, unseen pairs
    leaked = train[:2] + [rec("preference", 30, "x" * 4, "y", file="b.jsonl")]  # two pairs the RM trained on
    said: list[str] = []
    metrics, scores = evaluate_sets(rmlib.load(tiny_bert_dir), {"held-out": held, "other": other, "leaked": leaked},
                                    4, train=train, say=said.append)
    assert len(said) == 6 and said[2] == "validation: scoring other (4 pairs)"  # a start and an end per set
    assert said[3].startswith("validation: other scored in ") and said[3].endswith(
        f"pairs/s), accuracy {metrics['other']['accuracy']:.3f}")

    o = metrics["other"]
    assert o["pairs"] == 4 and (o["ci_resamples"], o["ci_seed"]) == (1000, 0)
    assert o["ci95"][0] <= o["accuracy"] <= o["ci95"][1]
    assert o["length"]["longer_wins"]["accuracy"] == 0.5 and o["length"]["shorter_wins"]["accuracy"] == 0.25
    assert o["length"]["length_ties"] == 1 and o["length"]["rm_where_longer_rejected"]["n"] == 1
    chosen, rejected = scores["other"]
    assert o["length"]["rm_where_longer_rejected"]["accuracy"] == float(chosen[1] > rejected[1])
    assert o["accuracy"] == sum(c > r for c, r in zip(chosen, rejected)) / 4
    # what was trained on: another file is another source; the train file's unseen pairs are the same source
    assert (o["source_trained"], o["train_overlap"]) == (False, 0)
    assert (metrics["held-out"]["source_trained"], metrics["held-out"]["train_overlap"]) == (True, 0)
    assert (metrics["leaked"]["source_trained"], metrics["leaked"]["train_overlap"]) == (True, 2)
    # HH's subsets share the dataset name and are still different sources
    base = [rec("hh-rlhf", 1, "x", "y", file="helpful-base_test.jsonl.gz", subset="helpful-base")]
    rs = [rec("hh-rlhf", 1, "x", "yy", file="helpful-rejection-sampled_test.jsonl.gz",
              subset="helpful-rejection-sampled")]
    assert seen_in_training(rs, base)["source_trained"] is False
    assert seen_in_training(base[:1], base) == {"sources": ["hh-rlhf/helpful-base/helpful-base_test.jsonl.gz"],
                                                "source_trained": True, "train_overlap": 1}


def test_the_printed_tables_give_every_accuracy_its_interval_and_say_what_was_trained_on(tiny_bert_dir):
    from realm_cli.evaluate.stats import format_ci
    from realm_cli.rewards import rm as rmlib
    from realm_cli.train.metrics import evaluate_sets, print_table

    train = [rec("preference", i, "a" * (i + 2), "b") for i in range(6)]
    sets = {"held-out": [rec("preference", 20 + i, "a" * (i + 3), "bb") for i in range(5)],
            "elsewhere": [rec("preference", i, "c" * (i % 4 + 1), "dd", file="b.jsonl") for i in range(7)],
            "leaked": train[:3]}
    metrics, _ = evaluate_sets(rmlib.load(tiny_bert_dir), sets, 4, train=train)
    console = Console(record=True, width=250)
    print_table(metrics, console)
    text = console.export_text()
    validation, transfer = text.split("transfer: the trained RM vs length baselines")
    for name, m in metrics.items():
        shown = format_ci(m["accuracy"], m["ci95"])
        assert "[" in shown and shown in validation.split(name, 1)[1].splitlines()[0], name
    rows = {line.split()[1]: line for line in transfer.splitlines() if line.startswith("│ ")}
    assert "│ no " in rows["elsewhere"] and "│ source " in rows["held-out"]
    assert "3 pairs trained on" in rows["leaked"]
    longer = metrics["elsewhere"]["length"]["longer_wins"]
    assert format_ci(longer["accuracy"], longer["ci95"]) in rows["elsewhere"]

    # without the train records the column is left out rather than guessed
    bare, _ = evaluate_sets(rmlib.load(tiny_bert_dir), sets, 4)
    console = Console(record=True, width=250)
    print_table(bare, console)
    assert "trained on?" not in console.export_text() and "source_trained" not in bare["elsewhere"]


def test_a_train_rm_run_reports_intervals_baselines_and_the_transfer_panel(tmp_path, tiny_bert_dir):
    from PIL import Image

    from realm_cli.recipes import runner
    from realm_cli.train.plots import plot

    data = write_pairs(tmp_path / "pairs.jsonl", n=40)
    other = write_pairs(tmp_path / "other.jsonl", n=12, seed=5)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, tmp_path / "out", trainer={"max_steps": 4})
    metrics = runner.run("train-rm", str(recipe), [f"data.validation={{other: [{{name: preference, path: {other}}}]}}"])
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())["validation"]
    assert set(saved) == {"held-out", "other"} and saved == json.loads(json.dumps(metrics["validation"]))
    for m in saved.values():
        low, high = m["ci95"]
        assert 0 <= low <= m["accuracy"] <= high <= 1
        # the synthetic chosen answer is always the longer one: "longer wins" is perfect, "shorter wins" never right
        assert m["length"]["longer_wins"]["accuracy"] == 1.0 and m["length"]["shorter_wins"]["accuracy"] == 0.0
        assert m["length"]["rm_where_longer_rejected"]["n"] == 0 and m["length"]["best_baseline"] == "longer_wins"

    # the PNG with the transfer panel (bt.py passes the validation metrics: one panel more than without)
    scores = {name: ([0.1, 0.2], [0.0, 0.3]) for name in saved}
    plot([{"step": 1, "loss": 0.7}], scores, tmp_path / "plain.png")
    plot([{"step": 1, "loss": 0.7}], scores, tmp_path / "transfer.png", metrics=saved)
    plain, transfer = Image.open(tmp_path / "plain.png"), Image.open(tmp_path / "transfer.png")
    assert transfer.size[1] == plain.size[1] and transfer.size[0] > plain.size[0] * 1.15


def test_the_transfer_benchmark_trains_on_each_source_and_scores_the_others(tmp_path, tiny_bert_dir):
    """The real script in its own processes on the real HH files, a tiny model and a few pairs: the matrix, the
    JSON, the CPU class and the goals are all there, each cross-source cell scored on a set the run did not train on."""
    for name in ("hh-rlhf/helpful-base_test.jsonl.gz", "hh-rlhf/helpful-rejection-sampled_test.jsonl.gz",
                 "llmbar/LLMBar/Natural/dataset.json", "llmbar/Processed/MT-Bench/dataset.json",
                 "pandalm/testset-v1.json"):
        shared_file(name)
    out = tmp_path / "transfer.json"
    overrides = [f"model.name={tiny_bert_dir}", "data.max_length=64",
                 "trainer.max_steps=2", "trainer.max_minutes=null", "trainer.per_device_batch_size=4",
                 "trainer.num_threads=1", "trainer.save_steps=1000"]
    result = subprocess.run([sys.executable, "benchmarks/rm_transfer.py", "--eval-limit", "6", "--train-limit", "24",
                             "--precision", "fp32",
                             "--output-dir", str(tmp_path / "runs"), "--json", str(out), *overrides],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                 "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CPU:" in result.stdout and "transfer matrix" in result.stdout and "(held-out)" in result.stdout
    detail = json.loads(out.read_text())
    assert set(detail["cpu"]) >= {"model", "cores", "amx_bf16", "avx512_bf16"}
    runs = {r["train_source"]: r for r in detail["runs"]}
    assert set(runs) == {"helpful-base", "helpful-rejection-sampled"}
    for source, other in (("helpful-base", "helpful-rejection-sampled"), ("helpful-rejection-sampled",
                                                                          "helpful-base")):
        run = runs[source]
        val = run["validation"]
        assert set(val) == {"held-out", other, "llmbar-natural", "mt-bench-human", "pandalm"}
        assert val[other]["pairs"] == 6 and other in run["other_sets"] and source not in run["other_sets"]
        assert json.loads(run["overrides"][0].split("=", 1)[1]) == [{"name": "hh-rlhf", "subset": source,
                                                                     "limit": 24}]
        assert all("longer_wins" in m["length"] and len(m["ci95"]) == 2 for m in val.values())
        assert run["cpu_seconds"] > 0 and run["train"]["steps"] == 2 and "fp32" in run["train"]["precision_mode"]
        assert set(run["goals"]["cross_source"]) == {other}
        assert run["goals"]["cross_source_goal"] == (val[other]["accuracy"] >= 0.60)
    # the saved JSON prints the same matrix again without training anything
    shown = subprocess.run([sys.executable, "benchmarks/rm_transfer.py", "--show", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0, shown.stderr[-2000:]
    rows = [line for line in shown.stdout.splitlines() if line.startswith("│ helpful-")]
    assert len(rows) == 2 and "(held-out)" in shown.stdout
    accuracy = runs["helpful-base"]["validation"]["helpful-rejection-sampled"]["accuracy"]
    assert f"{accuracy:.3f} [" in rows[[r.split()[1] for r in rows].index("helpful-base")]


@pytest.mark.parametrize("name", ["cpu-minilm", "cpu-quality"])
def test_cpu_recipes_judge_the_rm_on_sources_it_never_trained_on(name):
    """Every named validation set of the CPU recipes comes from a source the recipe does not train on (the real
    files, read as the run reads them), and the demo keeps room in its 8 minutes for scoring them."""
    from realm_cli.data import load as data
    from realm_cli.evaluate.transfer import seen_in_training
    from realm_cli.recipes import recipe as recipes

    shared_file("hh-rlhf/helpful-rejection-sampled_test.jsonl.gz")
    recipe = recipes.load(name)
    splits = data.load(recipe.data)
    named = {k: v for k, v in splits.validation.items() if k != "held-out"}
    assert "helpful-rejection-sampled" in named and "llmbar-natural" in named
    for set_name, records in named.items():
        seen = seen_in_training(records, splits.train)
        assert records and not seen["source_trained"] and seen["train_overlap"] == 0, set_name
    assert seen_in_training(splits.validation["held-out"], splits.train)["source_trained"]
    pairs = sum(len(v) for v in splits.validation.values())
    if name == "cpu-minilm":
        # measured: the trained MiniLM scored 2,487 validation pairs in 134 CPU-seconds (18.5 pairs per CPU-second,
        # max_length 256, AVX512-BF16): the demo's sets must score in under 45 s on 2 cores, inside its 8 minutes
        assert recipe.trainer.options.max_minutes + 1.5 <= 8 and pairs / 18.5 / 2 <= 45
