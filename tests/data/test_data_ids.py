"""Record ids stay unique across a folder's sub-folders, and nonsense source options are refused, not obeyed."""

from __future__ import annotations

import json

import pytest

from realm_cli.config import PluginSpec
from realm_cli.data.load import load_source
from realm_cli.errors import RealmError

ROW = {"prompt": "q", "chosen": "yes", "rejected": "no"}


def test_files_of_the_same_name_in_two_sub_folders_get_different_ids(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "c.jsonl").write_text(json.dumps(ROW) + "\n")
    records = load_source(PluginSpec("preference", {"path": str(tmp_path)})).records
    assert [r.id for r in records] == ["a/c.jsonl:1", "b/c.jsonl:1"]
    single = load_source(PluginSpec("preference", {"path": str(tmp_path / "a" / "c.jsonl")})).records
    assert [r.id for r in single] == ["c.jsonl:1"]  # a file named by itself keeps its bare name


@pytest.mark.parametrize("option, value", [("limit", -1), ("limit", 0), ("count", 0), ("weight", 0), ("weight", -2)])
def test_a_limit_count_or_weight_that_selects_nothing_is_an_error(tmp_path, option, value):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    with pytest.raises(RealmError, match=option) as info:
        load_source(PluginSpec("preference", {"path": str(path), option: value}))
    assert "\n" not in str(info.value)
