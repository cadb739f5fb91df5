"""``realm data inspect`` and ``realm data convert`` through the real CLI app."""

from __future__ import annotations

import json

import pytest
from support.shared import shared_file
from typer.testing import CliRunner

from realm_cli.cli import build_app
from realm_cli.data.guess import guess_plugin
from support.shared import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "data"
runner = CliRunner()


def realm(*args: str):
    return runner.invoke(build_app(), list(args), catch_exceptions=False)


@pytest.mark.parametrize("file, plugin", [
    ("shp.jsonl", "shp"), ("nemo_rank.jsonl", "nemo-rank"), ("rlhflow.jsonl", "rlhflow"),
    ("helpsteer3.jsonl", "helpsteer3"), ("ultrafeedback_binarized.parquet", "ultrafeedback-binarized"),
    ("dahoas_synthetic.parquet", "preference"), ("reward_bench.jsonl", "reward-bench"),
    ("mt_bench_human_judgments.jsonl", "mt-bench-human"), ("tulu3_preference.jsonl", "tulu3-preference"),
])
def test_guess_plugin_from_fixture_files(file, plugin):
    assert guess_plugin(FIXTURES / file) == plugin


def test_guess_plugin_on_shared_files():
    assert guess_plugin(shared_file("hh-rlhf/helpful-base_test.jsonl.gz")) == "hh-rlhf"
    assert guess_plugin(shared_file("pandalm/testset-v1.json")) == "pandalm"
    assert guess_plugin(shared_file("llmbar/Processed/MT-Bench/dataset.json")) == "mt-bench-human"
    assert guess_plugin(shared_file("llmbar/LLMBar")) == "llmbar"
    assert guess_plugin(shared_file("truthfulqa/v1")) == "truthfulqa"


def test_inspect_json_counts_duplicates_and_skips(tmp_path):
    rows = [{"prompt": "p1", "chosen": "a", "rejected": "b"}, {"prompt": "p1", "chosen": "a", "rejected": "b"},
            {"prompt": "p2", "chosen": "same", "rejected": "same"}, {"prompt": "p3", "chosen": "x y z", "rejected": "w"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = realm("data", "inspect", str(path), "--on-bad-record", "skip", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["records"] == 3 and info["duplicate_pairs"] == 1 and info["repeated_prompts"] == 1
    assert info["source"]["skipped"] == {"chosen == rejected": 1}
    assert info["lengths"]["chosen"]["p100"] == 3 and info["length_unit"] == "words"


def test_inspect_fail_policy_is_one_red_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n')
    result = realm("data", "inspect", str(path))
    assert result.exit_code == 2
    assert f"{path}:2: field 'rejected': missing key" in result.output
    assert "Traceback" not in result.output


def test_inspect_tables_with_tokenizer(minilm_tokenizer_dir):
    result = realm("data", "inspect", str(FIXTURES / "helpsteer3.jsonl"), "--tokenizer", minilm_tokenizer_dir,
                   "--max-length", "16", "--examples", "1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "lengths (tokens)" in out and "skipped records (by reason)" in out and "tie" in out
    assert "truncated at max_length 16" in out and "example helpsteer3.jsonl:1" in out


def test_inspect_named_dataset_with_options():
    shared_file("llmbar/LLMBar/Natural/dataset.json")
    result = realm("data", "inspect", "llmbar", "subsets=[llmbar-adver-manual]", "--json", "--examples", "0")
    assert json.loads(result.output)["records"] == 46


def test_convert_round_trip(tmp_path):
    out = tmp_path / "canon.jsonl"
    result = realm("data", "convert", str(FIXTURES / "helpsteer3.jsonl"), "-o", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and lines[0]["margin"] == 3.0 and lines[0]["prompt"][-1]["role"] == "user"
    back = realm("data", "inspect", str(out), "--json", "--examples", "5")
    examples = json.loads(back.output)["examples"]
    assert [(e["chosen"], e["rejected"], e["margin"], e["meta"]) for e in examples] == [
        (x["chosen"], x["rejected"], x["margin"], x["meta"]) for x in lines]


def test_convert_never_leaves_a_partial_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{not json}\n')
    out = tmp_path / "out.jsonl"
    result = realm("data", "convert", str(bad), "--output", str(out))
    assert result.exit_code == 2 and f"{bad}:2: invalid JSON" in result.output
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
