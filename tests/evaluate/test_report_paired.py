"""`realm report A B`: intervals beside values and a paired test of B against A on the items both runs scored,
matched by id; McNemar p-values worked out by hand."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from realm_cli.cli import build_app


def _invoke(args):
    return CliRunner().invoke(build_app(), args, catch_exceptions=False)


def run_dir(path, metrics, files=None):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "recipe.yaml").write_text("# realm eval --recipe x\ncommand: eval\n")
    for name, content in (files or {}).items():
        (path / name).write_text(json.dumps(content))
    return path


def pref_rows(prefix, correct, order=None):
    rows = [{"id": f"{prefix}{i}", "chosen": 1.0 if ok else 0.0, "rejected": 0.5, "correct": ok}
            for i, ok in enumerate(correct)]
    return [rows[i] for i in order] if order else rows


def test_paired_mcnemar_on_items_matched_by_id(tmp_path):
    a_help = [True] * 7 + [False] * 3
    b_help = [True, True, True, False, False, False, False, False, True, False]
    a_rows = {"helpful": pref_rows("h", a_help) + [{"id": "dup", "correct": True}, {"id": "dup", "correct": False}],
              "harmless": pref_rows("x", [False] * 5)}
    b_rows = {"helpful": pref_rows("h", b_help, order=list(range(9, -1, -1))) + [{"id": "h10", "correct": True}],
              "harmless": pref_rows("x", [True] * 5)}
    metrics = {"preference": {"helpful": {"accuracy": 0.7, "ci95": [0.4, 0.9], "ci_resamples": 1000, "ci_seed": 0}}}
    a = run_dir(tmp_path / "a", metrics, {"preference.json": {"per_pair": a_rows}})
    b = run_dir(tmp_path / "b", {"preference": {"helpful": {"accuracy": 0.4}}},
                {"preference.json": {"per_pair": b_rows}})
    out = tmp_path / "report"
    result = _invoke(["report", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "0.700 [0.400, 0.900]" in result.output  # the interval the run recorded, beside its value
    assert "paired test: b (B) vs a (A)" in result.output
    assert "McNemar exact" in result.output and "b=4 c=1" in result.output
    report = json.loads((out / "report.json").read_text())
    assert "preference.helpful.ci_resamples" not in report["keys"]  # bootstrap settings are not metrics
    rows = {r["group"]: r for r in report["paired"]}
    assert set(rows) == {"all", "helpful", "harmless"}
    # helpful, matched by id although B lists them in reverse: only A right on h3-h6 (b = 4), only B on h8 (c = 1);
    # exact: 2 * (C(5,0) + C(5,1)) / 2^5 = 12/32
    helpful = rows["helpful"]
    assert (helpful["b"], helpful["c"], helpful["items"]) == (4, 1, 10)
    assert helpful["p_value"] == pytest.approx(12 / 32) and helpful["significant"] is False
    assert helpful["diff"] == pytest.approx(0.4 - 0.7)  # B - A on the shared items
    # harmless: B right on all 5, A on none: b = 0, c = 5, p = 2 / 2^5
    assert (rows["harmless"]["b"], rows["harmless"]["c"]) == (0, 5)
    assert rows["harmless"]["p_value"] == pytest.approx(0.0625)
    # all 15 shared items: b = 4, c = 6: 2 * (1 + 10 + 45 + 120 + 210) / 2^10; h10 only in B; "dup" is ambiguous
    pooled = rows["all"]
    assert (pooled["b"], pooled["c"], pooled["items"]) == (4, 6, 15)
    assert pooled["p_value"] == pytest.approx(2 * 386 / 1024)
    assert (pooled["only_a"], pooled["only_b"], pooled["ambiguous"]) == (0, 1, 2)
    assert (pooled["run_a"], pooled["run_b"]) == ("a", "b")


def test_paired_bootstrap_for_item_means(tmp_path):
    rb2 = lambda value: {"protocol": "reward-bench-v2", "per_pair": [  # noqa: E731
        {"id": str(i), "subset": "Math", "results": value} for i in range(6)] + [
        {"id": "ref:1", "subset": "Ties", "results": None}]}
    rm = lambda cell: {"per_item": [{"id": str(i), "domain": "chat", "matrix": [[cell] * 3] * 3}  # noqa: E731
                                    for i in range(4)]}
    a = run_dir(tmp_path / "a", {"x": 1}, {"reward_bench.json": rb2(0.0), "rm_bench.json": rm(0)})
    b = run_dir(tmp_path / "b", {"x": 2}, {"reward_bench.json": rb2(1.0), "rm_bench.json": rm(1)})
    out = tmp_path / "report"
    assert _invoke(["report", str(a), str(b), "-o", str(out)]).exit_code == 0
    rows = {r["benchmark"]: r for r in json.loads((out / "report.json").read_text())["paired"]}
    assert set(rows) == {"reward-bench-2", "rm-bench"}
    # B beats A by 1 on every item: the difference is 1 in every resample
    for row in rows.values():
        assert row["test"] == "paired-bootstrap"
        assert (row["diff"], row["ci95"], row["p_value"], row["significant"]) == (1.0, [1.0, 1.0], 0.0, True)
    assert rows["reward-bench-2"]["items"] == 6  # the Ties row has no per-item result
    assert rows["rm-bench"]["items"] == 4 and rows["rm-bench"]["group"] == "all"


def test_shared_only_with_nothing_shared_says_so_in_one_line(tmp_path):
    a = run_dir(tmp_path / "a", {"x": 1}, {"preference.json": {"per_pair": {"s": pref_rows("a", [True])}}})
    b = run_dir(tmp_path / "b", {"y": 2}, {"preference.json": {"per_pair": {"s": pref_rows("b", [True])}}})
    result = _invoke(["report", str(a), str(b), "--shared-only", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if "shared" in line and "metric" in line] == [
        "no metric is shared by two or more of the 2 runs: nothing to show with --shared-only"]
    assert "realm report" not in result.output  # no empty table
    notes = [line for line in lines if line.startswith("paired test")]
    assert notes == ["paired test b vs a: no items shared (items are matched by benchmark, set/subset/domain and id)"]
