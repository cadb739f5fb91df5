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


# --- one guessing rule, declared by the plugins ----------------------------------------------------------------------
ACME_ROWS = [{"question": "Is water wet?", "good": "Yes, in the everyday sense.", "bad": "No."},
             {"question": "Name a colour.", "good": "Blue.", "bad": "Seven."}]


def acme_plugin():
    """A third-party dataset plugin whose class declares the signature of its rows."""
    from realm_cli.data.guess import Signature
    from realm_cli.data.rows import RowSource, pair, prompt_value, text
    from realm_cli.hookspecs import hookimpl

    class AcmePairs(RowSource):
        """Acme's question/good/bad pairs."""

        name = "acme-pairs"
        signature = Signature(keys=("question", "good", "bad"), hub_ids=("acme/*",))

        def convert(self, row, where):
            prompt = prompt_value(text(row, "question", where), where, "question")
            return pair(prompt, text(row, "good", where), text(row, "bad", where), where, source=self.name)

    class Acme:
        @staticmethod
        @hookimpl
        def register_datasets(register):
            register("acme-pairs", AcmePairs)

    return Acme


@pytest.fixture
def acme(fresh_plugins):
    fresh_plugins.reset(fresh_plugins.build(extra_plugins=[acme_plugin()]))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_third_party_dataset_is_guessed_from_its_declared_signature(tmp_path, acme):
    from realm_cli.data.guess import guess_hub

    path = write_jsonl(tmp_path / "acme.jsonl", ACME_ROWS)
    assert guess_plugin(path) == "acme-pairs"
    result = realm("data", "inspect", str(path), "--json", "--examples", "1")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["source"]["name"] == "acme-pairs" and info["records"] == 2
    assert info["examples"][0]["chosen"] == "Yes, in the everyday sense."
    assert guess_hub("acme/pairs-v2") == "acme-pairs" and guess_hub("someone/else") == "preference"


def test_no_plugin_name_is_hard_coded_in_the_guess():
    from pathlib import Path

    from realm_cli import plugins
    from realm_cli.data import guess

    source = Path(guess.__file__).read_text()
    named = [n for n in plugins.registry().names("dataset") if f'"{n}"' in source or f"'{n}'" in source]
    assert named == []


def _eval_dataset(*args) -> list[dict]:
    """The dataset blocks `realm eval preference --dry-run` puts in the recipe it builds."""
    import yaml

    result = realm("eval", "preference", "--reward", "embedding", *args, "--dry-run")
    assert result.exit_code == 0, result.output
    recipe = yaml.safe_load(result.stdout)
    return [s for sets in recipe["evaluators"][0]["sets"].values() for s in sets]


@pytest.mark.parametrize("rows, plugin", [
    ([{"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}], "hh-rlhf"),
    ([{"prompt": "p", "chosen": "a", "rejected": "b"}], "preference"),
    (ACME_ROWS, "acme-pairs"),
])
def test_eval_data_and_data_inspect_guess_the_same_plugin(tmp_path, acme, rows, plugin):
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    inspected = json.loads(realm("data", "inspect", str(path), "--json").output)["source"]["name"]
    evaluated = _eval_dataset("--data", f"mine={path}")
    assert inspected == plugin == guess_plugin(path)
    assert [(d["name"], d["path"]) for d in evaluated] == [(plugin, str(path))]


def test_eval_dataset_flag_forces_the_plugin_for_files_and_hub_ids(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "\n\nHuman: hi\n\nAssistant: a",
                                                "rejected": "\n\nHuman: hi\n\nAssistant: b"}])
    blocks = _eval_dataset("--data", str(path), "--data", "hub=Anthropic/hh-rlhf", "--dataset", "preference")
    assert [(d["name"], d["path"], d["hub_id"]) for d in blocks] == [
        ("preference", str(path), None), ("preference", None, "Anthropic/hh-rlhf")]
    blocks = _eval_dataset("--data", "hub=Anthropic/hh-rlhf", "--data", "rb=allenai/reward-bench-2")
    assert [(d["name"], d["hub_id"]) for d in blocks] == [("hh-rlhf", "Anthropic/hh-rlhf"),
                                                          ("reward-bench", "allenai/reward-bench-2")]


def test_a_missing_file_is_one_line_naming_what_was_tried(tmp_path):
    result = realm("data", "inspect", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.jsonl'}: no such file or folder, not a hub id (OWNER/NAME), and unknown dataset" \
        in result.stderr
