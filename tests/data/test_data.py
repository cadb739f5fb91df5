"""The loading API: the generic preference plugin's forms, mixtures, validation sets, length fitting, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realm_cli.config import PluginSpec
from realm_cli.contracts import PreferenceRecord
from realm_cli.data.length import PairFitter, fit_input
from realm_cli.data.load import DataConfig, load, load_source, shared_data_dir
from realm_cli.errors import RealmError

U = lambda c: {"role": "user", "content": c}  # noqa: E731
A = lambda c: {"role": "assistant", "content": c}  # noqa: E731


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def pairs(n: int, tag: str) -> list[dict]:
    return [{"prompt": f"{tag} question {i}", "chosen": f"{tag} good {i}", "rejected": f"{tag} bad {i}"}
            for i in range(n)]


def test_shared_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("REALM_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.setenv("REALM_SHARED_DATA", str(tmp_path / "absent"))
    assert shared_data_dir() is None


def test_preference_explicit_conversational_with_margin(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"q": [U("hi"), A("hello"), U("2+2?")], "good": [A("4")], "bad": [A("5")], "m": 1.5}])
    record = load_source(PluginSpec("preference", {"path": path, "prompt_key": "q", "chosen_key": "good",
                                                   "rejected_key": "bad", "margin_key": "m"})).records[0]
    assert record.prompt == [U("hi"), A("hello"), U("2+2?")]
    assert (record.chosen, record.rejected, record.margin) == ("4", "5", 1.5)


def test_preference_implicit_forms(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"chosen": [U("Capital of Peru?"), A("Lima.")], "rejected": [U("Capital of Peru?"), A("Cusco.")]},
        {"chosen": "Q: best pet? A: a cat, clearly", "rejected": "Q: best pet? A: a rock"},
    ])
    conv, text = load_source(PluginSpec("preference", {"path": path})).records
    assert conv.prompt == [U("Capital of Peru?")] and (conv.chosen, conv.rejected) == ("Lima.", "Cusco.")
    assert text.prompt == [U("Q: best pet? A: a")] and (text.chosen, text.rejected) == ("cat, clearly", "rock")


def test_preference_csv_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = tmp_path / "p.csv"
    csv_path.write_text('prompt,chosen,rejected,margin\n"[{""role"": ""user"", ""content"": ""hi""}]",yes,no,2\n')
    record = load_source(PluginSpec("preference", {"path": str(csv_path)})).records[0]
    assert record.prompt == [U("hi")] and record.margin == 2.0
    pq.write_table(pa.Table.from_pylist(pairs(3, "pq")), tmp_path / "p.parquet")
    assert len(load_source(PluginSpec("preference", {"path": str(tmp_path / "p.parquet")})).records) == 3


def test_mixture_weights_counts_seed(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", pairs(100, "a"))
    b = write_jsonl(tmp_path / "b.jsonl", pairs(30, "b"))
    cfg = DataConfig(train=[PluginSpec("preference", {"path": a, "weight": 1.0}),
                            PluginSpec("preference", {"path": b, "weight": 1.0})], seed=7)
    splits = load(cfg)
    # equal shares, limited by the smaller source: 30 + 30, no record repeated
    assert [m["taken"] for m in splits.report.mixture] == [30, 30]
    assert len({r.id for r in splits.train if r.chosen.startswith("a")}) == 30
    again = load(cfg)
    assert [r.id for r in again.train] == [r.id for r in splits.train]
    other = load(DataConfig(train=cfg.train, seed=8))
    assert [r.id for r in other.train] != [r.id for r in splits.train]
    counted = load(DataConfig(train=[PluginSpec("preference", {"path": a, "count": 10}),
                                     PluginSpec("preference", {"path": b, "count": 45})]))
    assert [m["taken"] for m in counted.report.mixture] == [10, 45]  # 45 > 30: every b record once, 15 twice
    with pytest.raises(RealmError, match="give every source a weight"):
        load(DataConfig(train=[PluginSpec("preference", {"path": a, "weight": 1.0}),
                               PluginSpec("preference", {"path": b})]))


def test_validation_split_and_named_sets(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", pairs(50, "a"))
    v = write_jsonl(tmp_path / "v.jsonl", pairs(7, "v"))
    cfg = DataConfig(train=[PluginSpec("preference", {"path": a})], validation_split=0.2,
                     validation={"mine": [PluginSpec("preference", {"path": v})]})
    splits = load(cfg)
    assert len(splits.train) == 40 and len(splits.validation["held-out"]) == 10
    assert not {r.id for r in splits.train} & {r.id for r in splits.validation["held-out"]}
    assert [r.id for r in splits.validation["mine"]] == [f"v.jsonl:{i}" for i in range(1, 8)]  # file order kept
    table = splits.report.to_json()
    assert table["splits"]["held-out"]["records"] == 10 and table["sources"]["mine"][0]["kept"] == 7


def words(prompt, response: str) -> int:
    """A stand-in tokenizer: one token per word plus one per message boundary."""
    return sum(len(m["content"].split()) + 1 for m in prompt) + len(response.split()) + 1


class Words:
    """A stand-in ``RMFormat`` over ``words``: a word is a token id, "|" a message boundary."""

    def __init__(self, max_length: int):
        self.max_length = max_length

    @staticmethod
    def render(prompt, response: str) -> list:
        return [w for m in prompt for w in m["content"].split() + ["|"]] + response.split() + ["|"]

    def count(self, prompt, response: str) -> int:
        return len(self.render(prompt, response))

    def fit(self, prompt, response: str):
        return fit_input(self.render, prompt, response, self.max_length, tokens=lambda t: len(t.split()))


def record(prompt_turns: list[str], chosen: str, rejected: str) -> PreferenceRecord:
    roles = ["user", "assistant"]
    prompt = [{"role": roles[i % 2], "content": t} for i, t in enumerate(prompt_turns)]
    return PreferenceRecord(prompt=prompt, chosen=chosen, rejected=rejected)


def test_fitter_cuts_oldest_turns_first_keeping_responses():
    fit = PairFitter(Words(20))
    long_history = record(["old " * 6, "older reply " * 3, "now what?"], "a fine answer", "no")
    assert fit(long_history) == (long_history, "truncated")  # the record as read; its sides fitted one by one
    chosen, rejected = fit.sides(long_history)
    assert chosen.prompt == [{"role": "user", "content": "now what?"}]  # user turn first, responses whole
    assert chosen.cut.turns == 2 and not chosen.cut.prompt_tokens and not chosen.cut.response_tokens
    assert (chosen.response, rejected.response) == ("a fine answer", "no")
    assert max(words(chosen.prompt, chosen.response), words(rejected.prompt, rejected.response)) <= 20
    assert rejected.prompt == long_history.prompt and not rejected.truncated  # fits whole, as it is scored
    assert chosen.ids == Words.render(chosen.prompt, chosen.response)
    ok = record(["hi"], "yes", "no")
    assert fit(ok) == (ok, "ok")


def test_fitter_cuts_response_tail_last_and_drop_policy():
    fit = PairFitter(Words(12))
    long_answer = record(["question here"], "w " * 30, "short")
    assert fit(long_answer) == (long_answer, "truncated")
    chosen, rejected = fit.sides(long_answer)
    assert chosen.prompt == long_answer.prompt  # the prompt fits its half: kept
    assert words(chosen.prompt, chosen.response) <= 12 and rejected.response == "short"
    assert chosen.cut.response_tokens == 30 - len(chosen.response.split())
    drop = PairFitter(Words(12), "drop")
    assert drop(long_answer) == (long_answer, "dropped")


def test_fitter_cuts_the_final_turn_head_down_to_half_and_drops_what_cannot_fit():
    fitted = Words(12).fit([{"role": "user", "content": " ".join(map(str, range(30)))}], "a b c d e f g h i j")
    assert fitted.prompt[0]["content"].split() == ["25", "26", "27", "28", "29"]  # half the room left it
    assert len(fitted.ids) == 12 and fitted.cut.prompt_tokens == 25 and fitted.cut.response_tokens == 5
    huge_system = PreferenceRecord(prompt=[{"role": "system", "content": "rule " * 20},
                                           {"role": "user", "content": "ok?"}], chosen="yes", rejected="no")
    assert PairFitter(Words(12))(huge_system) == (huge_system, "dropped")
    scored = Words(12).fit(huge_system.prompt, "yes")  # scoring cannot drop: the last resort fits it, flagged
    assert not scored.fits and scored.prompt == [{"role": "user", "content": "ok?"}] and scored.response == "yes"
    same = record(["q " * 3], "same start " * 10 + "a", "same start " * 10 + "b")
    assert PairFitter(Words(8))(same) == (same, "dropped")  # cutting both tails left no preference


def test_load_reports_truncated_and_dropped(tmp_path):
    rows = pairs(5, "x") + [{"prompt": "long " * 50, "chosen": "c", "rejected": "r"}]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    cfg = DataConfig(train=[PluginSpec("preference", {"path": path})])
    truncated = load(cfg, fit=PairFitter(Words(16)))
    assert truncated.report.splits["train"].to_json() == {"records": 6, "kept": 6, "truncated": 1, "dropped": 0}
    assert (truncated.report.max_length, truncated.report.overlong) == (16, "truncate")
    dropped = load(cfg, fit=PairFitter(Words(16), "drop"))
    assert dropped.report.splits["train"].to_json() == {"records": 6, "kept": 5, "truncated": 0, "dropped": 1}
    assert len(dropped.train) == 5


def test_fitter_with_a_real_chat_template(smollm2_dir):
    from transformers import AutoTokenizer

    from realm_cli.rewards.rm import RMFormat

    fmt = RMFormat(AutoTokenizer.from_pretrained(smollm2_dir), 100)
    count = fmt.count
    fit = PairFitter(fmt)
    rec = record(["tell me a long story " * 10, "ok", "about the sea, please"], "Once upon a time " * 10, "No.")
    assert fit(rec) == (rec, "truncated")
    chosen, rejected = fit.sides(rec)
    assert max(count(chosen.prompt, chosen.response), count(rejected.prompt, rejected.response)) <= 100
    assert max(len(chosen.ids), len(rejected.ids)) <= 100 and chosen.ids == fmt.render(chosen.prompt, chosen.response)
    assert chosen.prompt == [{"role": "user", "content": "about the sea, please"}]
    assert (chosen.response, rejected.response) == (rec.chosen, rec.rejected)
    tight = PairFitter(RMFormat(fmt.tokenizer, 60))  # SmolLM2's template adds a ~30-token system prompt
    assert tight(rec)[1] == "truncated"
    assert max(count(f.prompt, f.response) for f in tight.sides(rec)) <= 60


def test_report_renders_as_rich_tables(tmp_path):
    from rich.console import Console

    rows = pairs(3, "x") + [{"prompt": "p", "chosen": "same", "rejected": "same"}]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    splits = load(DataConfig(train=[PluginSpec("preference", {"path": path})], on_bad_record="skip"))
    console = Console(record=True, width=200)
    console.print(splits.report)
    text = console.export_text()
    assert "skipped records (by reason)" in text and "chosen == rejected" in text and f"{path}:4" in text
    assert json.loads(json.dumps(splits.report.to_json()))["sources"]["train"][0]["skipped"] == {
        "chosen == rejected": 1}
