"""Bad input: exact file:line + field errors under ``fail``; under ``skip`` every input line is accounted for."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from realm_cli.config import PluginSpec
from realm_cli.contracts import BadRecord
from realm_cli.data.load import load_source
from realm_cli.errors import RealmError


def good(i: int) -> dict:
    return {"prompt": f"question {i}", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}


def write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def load(path, policy):
    return load_source(PluginSpec("preference", {"path": path}), on_bad_record=policy)


def test_broken_json_line_mid_file(tmp_path):
    lines = [json.dumps(good(i)) for i in range(10)]
    lines[4] = lines[4][:-7]  # cut mid-record
    path = write_lines(tmp_path / "pairs.jsonl", lines)
    with pytest.raises(BadRecord, match=rf"^{path}:5: invalid JSON at column \d+"):
        load(path, "fail")
    report = load(path, "skip").report
    assert report.kept == 9 and report.skipped == {"invalid JSON": 1}
    assert report.read == report.kept + sum(report.skipped.values()) == len(lines)
    assert report.first_error["invalid JSON"].startswith(f"{path}:5:")


def test_missing_key_wrong_type_empty_identical(tmp_path):
    rows = [good(i) for i in range(8)]
    del rows[1]["rejected"]
    rows[3]["chosen"] = ["not", "messages"]
    rows[5]["chosen"] = "   "
    rows[6]["rejected"] = rows[6]["chosen"]
    path = write_lines(tmp_path / "pairs.jsonl", [json.dumps(r) for r in rows])
    with pytest.raises(BadRecord, match=rf"^{path}:2: field 'rejected': missing key"):
        load(path, "fail")
    report = load(path, "skip").report
    assert report.skipped == {"missing key": 1, "wrong type": 1, "empty response": 1, "chosen == rejected": 1}
    assert report.first_error["wrong type"].startswith(f"{path}:4: field 'chosen[0]': expected a message")
    assert report.first_error["empty response"] == f"{path}:6: field 'chosen': empty response"
    assert report.first_error["chosen == rejected"] == f"{path}:7: field 'rejected': chosen and rejected are identical"
    assert report.read == report.kept + sum(report.skipped.values()) == len(rows)


def test_bad_utf8_spoils_only_its_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    data = b"".join(json.dumps(good(i)).encode() + b"\n" for i in range(3))
    path.write_bytes(data + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n' + json.dumps(good(9)).encode())
    with pytest.raises(BadRecord, match=rf"^{path}:4: invalid UTF-8 byte 0xe9 at column 16"):
        load(str(path), "fail")
    report = load(str(path), "skip").report
    assert report.kept == 4 and report.skipped == {"bad UTF-8": 1} and report.read == 5


def test_truncated_gzip(tmp_path):
    lines = [json.dumps(good(i)) for i in range(3000)]
    blob = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = blob[: len(blob) // 2]
    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(cut)
    # What a reader can recover: the complete lines inside the decompressible prefix.
    recoverable = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    report = load(str(path), "skip").report
    assert report.skipped == {"truncated file": 1}
    assert 0 < report.kept <= recoverable
    assert report.read == report.kept + 1
    assert report.first_error["truncated file"].startswith(f"{path}:{report.kept + 1}: compressed stream ends early")
    with pytest.raises(BadRecord, match=rf"^{path}:{report.kept + 1}: compressed stream ends early"):
        load(str(path), "fail")


def test_json_array_items_located_by_line(tmp_path):
    rows = [good(0), {"prompt": "q", "chosen": "a"}, good(2)]
    path = tmp_path / "pairs.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r, indent=1) for r in rows) + "\n]\n")
    starts = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line.lstrip(", ").startswith("{")]
    with pytest.raises(BadRecord, match=rf"^{path}:{starts[1]}: field 'rejected': missing key"):
        load(str(path), "fail")
    assert [r.id for r in load(str(path), "skip").records] == [f"pairs.json:{starts[0]}", f"pairs.json:{starts[2]}"]


def test_csv_rows_located_by_line(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('prompt,chosen,rejected\nq1,a,b\nq2,"multi\nline",c\nq3,,d\n')
    with pytest.raises(BadRecord, match=rf"^{path}:5: field 'chosen': empty response"):
        load(str(path), "fail")


@pytest.mark.parametrize("options, message", [
    ({"path": "/no/such/file.jsonl"}, "/no/such/file.jsonl: no such file or directory"),
    ({"path": __file__}, "unsupported file type"),
    ({}, "dataset preference: no path given and no default location"),
    ({"chosen_kye": "x"}, "dataset preference.chosen_kye: unknown key (did you mean 'chosen_key'?)"),
])
def test_one_line_errors(options, message):
    with pytest.raises(RealmError) as info:
        load_source(PluginSpec("preference", options))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_dataset_suggests():
    with pytest.raises(RealmError, match="unknown dataset 'hh-rlfh'; did you mean 'hh-rlhf'"):
        load_source(PluginSpec("hh-rlfh", {}))
