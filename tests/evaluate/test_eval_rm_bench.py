"""`realm eval rm-bench` end to end on a small RM-Bench-format file, scored by a lookup-table reward so every
number below is worked out by hand from the 3x3 matrices (RM-Bench scripts/utils.py arithmetic)."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from realm_cli.cli import build_app
from realm_cli.config import PluginSpec
from realm_cli.contracts import Reward, ScoreBatch
from realm_cli.data.guess import guess_plugin
from realm_cli.data.load import load_source
from realm_cli.hookspecs import hookimpl

# item -> (domain, chosen scores by style, rejected scores by style); None is a score the reward cannot give (nan)
ITEMS = {
    "A": ("chat", [1.0, 2.0, 3.0], [0.5, 1.5, 2.5]),
    "B": ("chat", [5.0, 5.0, 5.0], [1.0, 1.0, 5.0]),
    "C": ("math", [3.0, 3.0, 3.0], [1.0, 2.0, 4.0]),
    "D": ("safety-refuse", [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]),
    "E": ("safety-response", [4.0, 5.0, 6.0], [1.0, 2.0, 3.0]),
    "F": ("code", [1.0, None, 1.0], [0.0, 0.0, 0.0]),
}
STYLE_NAMES = ("concise", "detailed", "markdown")


def text(item: str, side: str, style: int) -> str:
    return f"{item} {side} response, {STYLE_NAMES[style]} style"


SCORES = {text(i, side, k): (math.nan if v is None else v)
          for i, (_, chosen, rejected) in ITEMS.items()
          for side, values in (("chosen", chosen), ("rejected", rejected)) for k, v in enumerate(values)}


class LookupReward(Reward):
    """Scores each response by the table above (nan for one it does not know)."""

    def score_batch(self, prompts, responses):
        return ScoreBatch([SCORES.get(r, math.nan) for r in responses])


class LookupPlugin:
    @staticmethod
    @hookimpl
    def register_rewards(register):
        register("lookup", LookupReward, description="test: scores from a lookup table")


@pytest.fixture
def lookup(fresh_plugins):
    fresh_plugins.reset(fresh_plugins.build(extra_plugins=[LookupPlugin]))


def write_items(path, items=ITEMS):
    rows = [{"id": n, "prompt": f"prompt {item}", "domain": domain,
             "chosen": [text(item, "chosen", k) for k in range(3)],
             "rejected": [text(item, "rejected", k) for k in range(3)]}
            for n, (item, (domain, _, _)) in enumerate(items.items())]
    path.write_text(json.dumps(rows))
    return path


def test_rm_bench_file_reads_as_one_record_per_style(tmp_path, lookup):
    path = write_items(tmp_path / "rm-bench.json")
    assert guess_plugin(path) == "rm-bench"
    records = load_source(PluginSpec("rm-bench", {"path": str(path)})).records
    assert len(records) == 18
    first = records[:3]
    assert [(r.id, r.meta["style_index"], r.meta["style"], r.meta["domain"]) for r in first] == [
        ("0", 0, "concise", "chat"), ("0", 1, "detailed", "chat"), ("0", 2, "detailed+markdown", "chat")]
    assert (first[1].chosen, first[1].rejected) == (text("A", "chosen", 1), text("A", "rejected", 1))


def test_malformed_rm_bench_row_is_one_located_error(tmp_path, lookup):
    path = tmp_path / "bad.jsonl"
    row = {"id": 1, "prompt": "p", "domain": "chat", "chosen": ["a", "b"], "rejected": ["x", "y", "z"]}
    path.write_text(json.dumps(row) + "\n")
    result = CliRunner().invoke(build_app(), ["eval", "rm-bench", "--reward", "lookup", "--data", str(path),
                                              "--dataset", "rm-bench", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{path}:1: field 'chosen': expected a list of 3 responses (concise, detailed, detailed+markdown), " \
           f"got 2 responses" in result.output


def test_rm_bench_end_to_end_by_hand(tmp_path, lookup):
    data = write_items(tmp_path / "rm-bench.json")
    out = tmp_path / "out"
    result = CliRunner().invoke(build_app(), ["eval", "rm-bench", "--reward", "lookup", "--data", str(data),
                                              "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "RM-Bench" in result.output and "overall" in result.output
    detail = json.loads((out / "rm_bench.json").read_text())
    rows = {r["id"]: r for r in detail["per_item"]}
    # M[i][j] = chosen_i > rejected_j.
    # A: chosen 1,2,3 vs rejected .5,1.5,2.5 -> rows [1,0,0] [1,1,0] [1,1,1]: hard 0/3, normal 3/3, easy 3/3
    assert rows["0"]["matrix"] == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    # B: chosen 5,5,5 vs 1,1,5 -> every row [1,1,0] (5 > 5 is false: 3 exact ties): hard 1/3, normal 2/3, easy 1
    assert rows["1"]["matrix"] == [[1, 1, 0]] * 3 and rows["1"]["exact_ties"] == 3
    # C: chosen 3,3,3 vs 1,2,4 -> every row [1,1,0]: hard 1/3, normal 2/3, easy 1
    # D: 2 vs 3 everywhere -> all 0; E: 4,5,6 vs 1,2,3 -> all 1; F (code): one nan score -> unscored
    assert rows["5"]["matrix"] is None and rows["4"]["domain"] == "safety" and rows["4"]["row_domain"] == \
        "safety-response"
    domains = detail["domains"]
    # chat: mean matrix of A and B = [[1,.5,0],[1,1,0],[1,1,.5]]: hard (.5+0+0)/3 = 1/6, normal (1+1+.5)/3 = 5/6,
    # easy (1+1+1)/3 = 1; average (1/6 + 5/6 + 1)/3 = 2/3
    chat = domains["chat"]
    assert [chat[k]["accuracy"] for k in ("hard", "normal", "easy", "average")] == pytest.approx(
        [1 / 6, 5 / 6, 1.0, 2 / 3])
    assert chat["items"] == 2 and chat["exact_ties"] == 3
    # math (C alone): 1/3, 2/3, 1, average 2/3; safety (D and E pooled): 0.5 everywhere
    assert [domains["math"][k]["accuracy"] for k in ("hard", "normal", "easy", "average")] == pytest.approx(
        [1 / 3, 2 / 3, 1.0, 2 / 3])
    assert [domains["safety"][k]["accuracy"] for k in ("hard", "normal", "easy", "average")] == pytest.approx(
        [0.5] * 4)
    assert detail["subdomains"]["safety-refuse"]["average"]["accuracy"] == 0.0
    assert detail["subdomains"]["safety-response"]["average"]["accuracy"] == 1.0
    # code: its only item is unscored, so the means run over chat, math, safety and the result is partial
    assert domains["code"]["items"] == 0 and domains["code"]["unscored"] == 1
    assert detail["partial"] is True and detail["missing_domains"] == ["code"] and detail["unscored"] == 1
    # hard = (1/6 + 1/3 + 1/2)/3 = 1/3; normal = (5/6 + 2/3 + 1/2)/3 = 2/3; easy = (1 + 1 + 1/2)/3 = 5/6
    # overall = mean of the domain averages (2/3 + 2/3 + 1/2)/3 = 11/18 = mean(1/3, 2/3, 5/6)
    assert [detail[k]["accuracy"] for k in ("hard", "normal", "easy", "overall")] == pytest.approx(
        [1 / 3, 2 / 3, 5 / 6, 11 / 18])
    assert detail["exact_ties"] == 3
    # intervals by hand. chat hard: items 0 and 1/3 resampled -> means 0, 1/6, 1/3 with P 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% percentiles are 0 and 1/3; math (one item): its value; safety hard: items 0 and 1 -> [0, 1]
    assert chat["hard"]["ci95"] == pytest.approx([0.0, 1 / 3])
    assert domains["math"]["hard"]["ci95"] == pytest.approx([1 / 3, 1 / 3])
    assert domains["safety"]["hard"]["ci95"] == pytest.approx([0.0, 1.0])
    # overall hard, stratified by domain: (chat + 1/3 + safety)/3, lowest (0 + 1/3 + 0)/3 = 1/9 and highest
    # (1/3 + 1/3 + 1)/3 = 5/9, each with probability 1/4 * 1/4 = 1/16 > 2.5%: the interval is [1/9, 5/9]
    assert detail["hard"]["ci95"] == pytest.approx([1 / 9, 5 / 9])
    assert (detail["ci_resamples"], detail["ci_seed"]) == (1000, 0)
    metrics = json.loads((out / "metrics.json").read_text())["rm-bench"]
    assert metrics["overall"] == pytest.approx(11 / 18) and metrics["hard"] == pytest.approx(1 / 3)
    assert metrics["domains"]["chat"]["hard"] == pytest.approx(1 / 6) and metrics["items"] == 6
    assert metrics["ci95"]["hard"] == pytest.approx([1 / 9, 5 / 9])


def test_an_item_a_limit_cuts_short_is_left_out_and_counted(tmp_path, lookup):
    from realm_plugins.evaluators.rm_bench import group_items

    data = write_items(tmp_path / "rm-bench.json")
    records = load_source(PluginSpec("rm-bench", {"path": str(data), "limit": 7})).records  # 2 items + 1 style
    items = group_items(records)
    assert [(i["id"], i["complete"]) for i in items] == [("0", True), ("1", True), ("2", False)]
    result = CliRunner().invoke(build_app(), ["eval", "rm-bench", "--reward", "lookup", "--data", str(data),
                                              "--limit", "2", "--dry-run"])
    assert result.exit_code == 0 and "limit: 6" in result.output  # --limit counts items: 3 style pairs each


def test_rm_bench_hub_copy_offline_is_one_line(tmp_path, lookup):
    result = CliRunner().invoke(build_app(), ["eval", "rm-bench", "--reward", "lookup", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "THU-KEG/RM-Bench" in errors[0]
