"""Property-based fuzzing of every user-facing parser: whatever a careless or hostile user feeds realm, the answer is
a valid result or one RealmError line, never another exception; skipped records add up; inputs are never changed.

The default budget (``REALM_FUZZ_EXAMPLES``, 60 per property) keeps ``make test`` quick; ``make fuzz`` runs
thousands per property.
"""

from __future__ import annotations

import gzip
import json
import os
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realm_cli.config import PluginSpec
from realm_cli.errors import RealmError

EXAMPLES = int(os.environ.get("REALM_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("REALM_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=12)
roles = st.sampled_from(["user", "assistant", "system", "tool", "", None, 3])
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": st.one_of(st.text(max_size=20), scalars)}),
                    max_size=3)
text_or_junk = st.one_of(st.text(max_size=30), messages, json_values)
# rows near the schema (so the deep paths run), then anything at all
rows = st.one_of(
    st.fixed_dictionaries({"prompt": text_or_junk, "chosen": text_or_junk, "rejected": text_or_junk},
                          optional={"margin": scalars, "response": text_or_junk, "id": scalars}),
    st.dictionaries(st.sampled_from(["prompt", "chosen", "rejected", "response", "x"]), text_or_junk, max_size=4),
    json_values)
lines = st.one_of(rows.map(lambda r: json.dumps(r)), st.text(max_size=40),
                  st.binary(max_size=40).map(lambda b: b.decode("latin-1")))


def _one_line(exc: RealmError) -> None:
    assert str(exc).strip() and "\n" not in str(exc).strip(), repr(str(exc))


def _write_lines(directory, name: str, items: list[str]) -> object:
    path = directory / name
    data = "".join(x.replace("\n", " ").replace("\r", " ") + "\n" for x in items).encode("utf-8", "surrogatepass")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


@FUZZ
@given(items=st.lists(lines, max_size=8), suffix=st.sampled_from([".jsonl", ".jsonl.gz", ".json", ".csv"]))
def test_dataset_reader_skips_and_counts_or_fails_in_one_line(tmp_path_factory, items, suffix):
    from realm_cli.data.load import load_source

    directory = tmp_path_factory.mktemp("reader")
    if suffix == ".json":
        path = directory / "rows.json"
        path.write_text(json.dumps([json.loads(x) if x.startswith("{") else x for x in items
                                    if _json_ok(x)]) if items else "")
    elif suffix == ".csv":
        path = directory / "rows.csv"
        path.write_text("prompt,chosen,rejected\n" + "".join(x.replace("\n", " ") + "\n" for x in items))
    else:
        path = _write_lines(directory, "rows" + suffix, items)
    before = path.read_bytes()
    try:
        loaded = load_source(PluginSpec("preference", {"path": str(path)}), on_bad_record="skip")
    except RealmError as exc:  # a file-level problem (not a data file at all): one line
        _one_line(exc)
    else:
        report = loaded.report
        assert report.read == report.kept + sum(report.skipped.values())
        assert report.kept == len(loaded.records)
        for record in loaded.records:
            assert isinstance(record.chosen, str) and isinstance(record.rejected, str)
            assert record.chosen.strip() and record.rejected.strip() and record.chosen != record.rejected
            assert all(m["role"] in ("system", "user", "assistant") for m in record.prompt)
        try:
            strict = load_source(PluginSpec("preference", {"path": str(path)}), on_bad_record="fail")
        except RealmError as exc:
            _one_line(exc)
            assert report.skipped, "fail raised although skip skipped nothing"
        else:
            assert not report.skipped and len(strict.records) == report.kept
    assert path.read_bytes() == before


def _json_ok(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@FUZZ
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".jsonl.gz", ".parquet", ".jsonl", ".csv.gz"]))
def test_binary_garbage_in_any_format_is_one_line(tmp_path_factory, data, suffix):
    from realm_cli.data.load import load_source

    path = tmp_path_factory.mktemp("binary") / f"rows{suffix}"
    path.write_bytes(data)
    try:
        loaded = load_source(PluginSpec("preference", {"path": str(path)}), on_bad_record="skip")
    except RealmError as exc:
        _one_line(exc)
    else:
        assert loaded.report.read == loaded.report.kept + sum(loaded.report.skipped.values())
    assert path.read_bytes() == data


keys = st.sampled_from(["model", "model.name", "trainer", "trainer.learning_rate", "trainer.epochs", "data",
                        "data.train", "data.max_length", "data.train[0].limit", "launch.accelerate_config",
                        "output_dir", "reward.alpha", "x.y", "", "a..b", "[0]"])
override_values = st.one_of(st.text(string.printable, max_size=20), json_values.map(json.dumps))


@FUZZ
@given(overrides=st.lists(st.builds(lambda k, v, sep: f"{k}{sep}{v}", keys, override_values,
                                    st.sampled_from(["=", "=", "", "=="])), max_size=4))
def test_recipe_overrides_validate_or_fail_in_one_line(overrides):
    from realm_cli.recipes import recipe as recipes

    try:
        loaded = recipes.load("cpu-minilm", overrides)
    except RealmError as exc:
        _one_line(exc)
    else:
        assert loaded.command == "train-rm"


@FUZZ
@given(body=st.one_of(st.dictionaries(st.sampled_from(["command", "model", "trainer", "data", "launch", "reward",
                                                         "output_dir", "description", "junk"]),
                                      json_values, max_size=6),
                      json_values),
       raw=st.booleans(), text=st.text(max_size=80))
def test_recipe_files_load_or_fail_in_one_line(tmp_path_factory, body, raw, text):
    from realm_cli.recipes import recipe as recipes

    path = tmp_path_factory.mktemp("recipe") / "fuzzed.yaml"
    path.write_text(text if raw else yaml.safe_dump(body, allow_unicode=True))
    try:
        recipes.load(str(path))
    except RealmError as exc:
        _one_line(exc)


@FUZZ
@given(inputs=st.lists(lines, min_size=0, max_size=6), existing=st.one_of(st.none(), st.lists(lines, max_size=3)),
       retry=st.booleans())
def test_score_input_and_output_are_checked_without_changing_either(tmp_path_factory, inputs, existing, retry):
    from realm_cli.rewards.score_io import plan_file

    directory = tmp_path_factory.mktemp("score")
    source = _write_lines(directory, "in.jsonl", inputs)
    out = directory / "out.jsonl"
    if existing is not None:
        _write_lines(directory, "out.jsonl", existing)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    try:
        plan = plan_file(source, out, retry_failed=retry)
    except RealmError as exc:
        _one_line(exc)
    else:
        assert all(n in dict(plan.rows) for n in plan.done) and len(plan.todo) + len(plan.done) == len(plan.rows)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before  # planning writes nothing


@pytest.fixture(scope="module")
def serve_client():
    from fastapi.testclient import TestClient

    from realm_cli.contracts import Reward, ScoreBatch
    from realm_cli.rewards.server import ServeSettings, build_app

    class Length(Reward):
        def score_batch(self, prompts, responses):
            return ScoreBatch([float(len(r)) for r in responses])

    with TestClient(build_app(Length(), "length", ServeSettings(max_batch=8)), base_url="http://localhost") as client:
        yield client


@FUZZ
@given(body=st.one_of(json_values, st.fixed_dictionaries({"items": st.lists(st.one_of(
    st.fixed_dictionaries({"prompt": text_or_junk, "response": text_or_junk}), json_values), max_size=10)}),
    st.fixed_dictionaries({"query": st.lists(text_or_junk, max_size=10)},
                          optional={"prompts": st.lists(text_or_junk, max_size=10), "labels": json_values})),
    endpoint=st.sampled_from(["/score", "/get_reward"]))
def test_serve_answers_every_body_with_a_result_or_a_4xx(serve_client, body, endpoint):
    response = serve_client.post(endpoint, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400, 413, 422), (response.status_code, response.text)
    if response.status_code == 200:
        result = response.json()
        n = len(body["items"]) if endpoint == "/score" else len(body["query"])
        assert len(result["scores"] if endpoint == "/score" else result["rewards"]) == n
