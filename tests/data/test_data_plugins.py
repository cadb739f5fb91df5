"""Every built-in dataset plugin on the real files in ../shared/data (counts from its README) or on fixture files
written in the hub schema."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from support.shared import shared_file

from realm_cli.config import PluginSpec
from realm_cli.contracts import PreferenceRecord, TruthfulQAItem
from realm_cli.data.load import load_source
from realm_cli.errors import RealmError
from support.shared import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "data"


def load(name: str, **options):
    return load_source(PluginSpec(name, options))


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def _hh_expectations(path: Path) -> Counter:
    """Classify each HH line independently of the plugin: where the two transcripts diverge, and the final turns."""
    marker = "\n\nAssistant:"
    out = Counter()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            c, r = row["chosen"], row["rejected"]
            ic, ir = c.rfind(marker), r.rfind(marker)
            if c[:ic] != r[:ir]:
                out["prompts differ"] += 1
            elif not c[ic + len(marker):].strip() or not r[ir + len(marker):].strip():
                out["empty response"] += 1
            elif c[ic:].strip() == r[ir:].strip():
                out["chosen == rejected"] += 1
            else:
                out["kept"] += 1
    return out


@pytest.mark.parametrize("subset, total", [("helpful-base", 2354), ("harmless-base", 2312)])
def test_hh_rlhf_real_files_every_line_accounted_for(subset, total):
    path = shared_file(f"hh-rlhf/{subset}_test.jsonl.gz")
    loaded = load("hh-rlhf", subset=subset)
    report = loaded.report
    assert report.read == total  # the README's record count
    assert report.kept + sum(report.skipped.values()) == total
    expected = _hh_expectations(path)
    assert report.kept == expected.pop("kept") == len(loaded.records)
    assert dict(report.skipped) == dict(expected)
    assert report.policy == "skip"  # curated public set: known defects are skipped and counted, not fatal


def test_hh_rlhf_record_shape():
    shared_file("hh-rlhf/helpful-base_test.jsonl.gz")
    record = load("hh-rlhf", limit=50).records[1]
    assert isinstance(record, PreferenceRecord)
    assert [m["role"] for m in record.prompt][-1] == "user"
    roles = [m["role"] for m in record.prompt]
    assert all(a != b for a, b in zip(roles, roles[1:]))  # alternating turns
    assert "\n\nHuman:" not in record.chosen and "Assistant:" not in record.rejected
    assert record.chosen != record.rejected and record.chosen == record.chosen.strip()
    assert record.id == "helpful-base_test.jsonl.gz:2"
    assert record.source == "hh-rlhf"


def test_hh_rlhf_fail_policy_names_the_first_bad_line():
    shared_file("hh-rlhf/helpful-base_test.jsonl.gz")
    with pytest.raises(RealmError, match=r"helpful-base_test\.jsonl\.gz:121: field 'rejected': empty response"):
        load("hh-rlhf", on_bad_record="fail")


def test_llmbar_five_rewardbench_subsets():
    shared_file("llmbar/LLMBar/Natural/dataset.json")
    loaded = load("llmbar")
    counts = Counter(r.meta["subset"] for r in loaded.records)
    assert counts == {"llmbar-natural": 100, "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92,
                      "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46}
    assert loaded.report.read == loaded.report.kept == 419


def test_llmbar_subset_choice_and_label_direction():
    path = shared_file("llmbar/LLMBar/Adversarial/GPTOut/dataset.json")
    raw = json.loads(path.read_text())
    records = load("llmbar", subsets=["llmbar-adver-GPTOut"]).records
    assert len(records) == 47
    for row, record in zip(raw, records):
        better, worse = (row["output_1"], row["output_2"]) if row["label"] == 1 else (row["output_2"], row["output_1"])
        assert (record.chosen, record.rejected) == (better, worse)
        assert record.prompt == [{"role": "user", "content": row["input"]}]


def test_llmbar_unknown_subset_is_one_clear_error():
    with pytest.raises(RealmError, match="unknown subset 'llmbar-natrual'"):
        load("llmbar", subsets=["llmbar-natrual"])


def test_mt_bench_human_200_pairs():
    shared_file("llmbar/Processed/MT-Bench/dataset.json")
    loaded = load("mt-bench-human")
    assert loaded.report.read == loaded.report.kept == 200
    assert {r.meta["subset"] for r in loaded.records} == {"mt-bench-human"}


def test_mt_bench_human_raw_votes_reduced_to_majority():
    loaded = load("mt-bench-human", path=fixture("mt_bench_human_judgments.jsonl"))
    (record,) = loaded.records
    assert record.meta["chosen_model"] == "gpt-4" and record.meta["votes"] == {"gpt-4": 2, "llama-13b": 1}
    assert record.prompt == [{"role": "user", "content": "Compose a short travel blog post about Hawaii."}]
    assert record.chosen.startswith("Aloha!") and record.rejected == "Hawaii is a state."
    assert loaded.report.skipped == {"tie": 1, "no majority": 1, "second turn": 1}


def test_pandalm_majority_and_ties_counted():
    path = shared_file("pandalm/testset-v1.json")
    raw = json.loads(path.read_text())
    loaded = load("pandalm")
    report = loaded.report
    assert report.read == 999 and report.kept + sum(report.skipped.values()) == 999
    majority = [Counter([r["annotator1"], r["annotator2"], r["annotator3"]]).most_common(1)[0][0] for r in raw]
    assert report.skipped["tie"] == majority.count(0)
    by_idx = {r["idx"]: r for r in raw}
    for record in loaded.records[:100]:
        row = by_idx[record.meta["idx"]]
        label = Counter(record.meta["votes"]).most_common(1)[0][0]
        assert record.chosen == row["response1" if label == 1 else "response2"]
    # The rest are pairs with an empty response (or a non-text one): skipped and counted, never silently.
    assert set(report.skipped) <= {"tie", "empty response", "wrong type", "chosen == rejected"}
    empty = sum(1 for r, m in zip(raw, majority) if m and any(
        isinstance(r[k], str) and not r[k].strip() for k in ("response1", "response2")))
    assert report.skipped["empty response"] == empty
    kept_empty = load("pandalm", keep_empty_responses=True).report
    assert "empty response" not in kept_empty.skipped and kept_empty.kept == report.kept + empty


@pytest.mark.parametrize("version, folder, total", [("v1", "truthfulqa/v1", 817), ("current", "truthfulqa", 790)])
def test_truthfulqa_both_versions(version, folder, total):
    shared_file(f"{folder}/mc_task.json")
    loaded = load("truthfulqa", version=version)
    assert loaded.report.kept == total
    items = loaded.records
    assert all(isinstance(i, TruthfulQAItem) for i in items)
    assert all(sum(i.mc1_labels) == 1 and i.mc1_labels[0] == 1 for i in items)  # lm-eval: MC1 truth at index 0
    assert all(1 in i.mc2_labels and 0 in i.mc2_labels for i in items)
    assert sum(bool(i.mc0_choices) for i in items) == (total if version == "current" else 0)
    # joined with the CSV by question text (v1's CSV has one question with a trailing space)
    assert sum(bool(i.category) for i in items) == total


def test_truthfulqa_cannot_train():
    from realm_cli.data.load import DataConfig
    from realm_cli.data.load import load as load_data

    shared_file("truthfulqa/v1/mc_task.json")
    with pytest.raises(RealmError, match="TruthfulQAItem records, not preference pairs"):
        load_data(DataConfig(train=[PluginSpec("truthfulqa", {})]))


def test_reward_bench_local_file_keeps_subset_and_id():
    loaded = load("reward-bench", path=fixture("reward_bench.jsonl"))
    assert [(r.meta["subset"], r.id) for r in loaded.records] == [
        ("math-prm", "101"), ("hep-python", "102"), ("refusals-dangerous", "103"), ("llmbar-natural", "104")]
    picked = load("reward-bench", path=fixture("reward_bench.jsonl"), subsets=["hep-python"]).records
    assert [r.chosen for r in picked] == ["print('hello world')"]


def test_shp_score_ratio_filter_counted():
    rows = [json.loads(line) for line in (FIXTURES / "shp.jsonl").read_text().splitlines()]
    everything = load("shp", path=fixture("shp.jsonl"))
    assert everything.report.kept == len(rows)
    for row, record in zip(rows, everything.records):
        assert record.chosen == (row["human_ref_A"] if row["labels"] == 1 else row["human_ref_B"])
    filtered = load("shp", path=fixture("shp.jsonl"), min_score_ratio=2.0)
    below = sum(max(r["score_A"], r["score_B"]) / min(r["score_A"], r["score_B"]) < 2 for r in rows)
    assert filtered.report.skipped == {"below score ratio": below}
    assert filtered.report.kept == len(rows) - below


def test_nemo_rank_pairs_from_ranks():
    loaded = load("nemo-rank", path=fixture("nemo_rank.jsonl"))
    pairs = [(r.chosen, r.rejected) for r in loaded.records]
    assert ("7", "8") in pairs
    # three ranked completions -> three pairs, the lower rank always chosen
    assert {p for p in pairs if "Paris" in p[0] or "Lyon" in p[0]} == {
        ("Paris", "Paris, France's capital city"), ("Paris", "Lyon"), ("Paris, France's capital city", "Lyon")}
    assert loaded.report.skipped == {"tie": 1}


def test_rlhflow_shared_prompt_turns():
    loaded = load("rlhflow", path=fixture("rlhflow.jsonl"), on_bad_record="skip")
    assert len(loaded.records[1].prompt) == 3 and loaded.records[1].rejected == "No."
    assert loaded.report.skipped == {"prompts differ": 1}
    with pytest.raises(RealmError, match=r"rlhflow\.jsonl:3: field 'rejected\[0\]': the prompt turns differ"):
        load("rlhflow", path=fixture("rlhflow.jsonl"))


def test_helpsteer3_direction_margin_and_ties():
    loaded = load("helpsteer3", path=fixture("helpsteer3.jsonl"))
    rows = [json.loads(line) for line in (FIXTURES / "helpsteer3.jsonl").read_text().splitlines()]
    kept_rows = [r for r in rows if r["overall_preference"] != 0]
    for row, record in zip(kept_rows, loaded.records):
        assert record.chosen == (row["response1"] if row["overall_preference"] < 0 else row["response2"])
        assert record.margin == abs(row["overall_preference"])
        assert record.prompt == row["context"]
    assert loaded.report.skipped == {"tie": 1}


def test_tulu3_and_ultrafeedback_and_dahoas():
    tulu = load("tulu3-preference", path=fixture("tulu3_preference.jsonl")).records
    assert [r.id for r in tulu] == ["tulu-1", "tulu-2"] and tulu[1].chosen == "chat"
    uf = load("ultrafeedback-binarized", path=fixture("ultrafeedback_binarized.parquet"), margin_from_scores=True)
    assert uf.report.skipped == {"chosen == rejected": 1}  # the binarization's identical pair, counted
    assert [r.margin for r in uf.records] == [4.5, 6.0]
    dahoas = load("dahoas-synthetic", path=fixture("dahoas_synthetic.parquet")).records
    assert dahoas[1].prompt == [{"role": "user", "content": "What is the capital of Japan?"}]


def test_hub_ids_offline_give_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RealmError) as info:
        load("dahoas-synthetic")
    message = str(info.value)
    assert "hf://Dahoas/synthetic-instruct-gptj-pairwise[train]" in message and "\n" not in message


def test_hub_code_path_reads_through_datasets(tmp_path):
    """``datasets.load_dataset`` also accepts a local folder: the streamed hub path runs here without a network."""
    import shutil

    folder = tmp_path / "dahoas"
    folder.mkdir()
    shutil.copy(FIXTURES / "dahoas_synthetic.parquet", folder / "train.parquet")
    loaded = load("dahoas-synthetic", hub_id=str(folder))
    assert [r.id for r in loaded.records] == [f"hf://{folder}[train]:1", f"hf://{folder}[train]:2"]
    assert loaded.records[0].chosen.startswith("Place the egg")
