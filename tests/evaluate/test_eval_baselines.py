"""Length baselines, intervals, exact ties and the recorded scoring settings in `realm eval preference` and
`realm eval reward-bench`, with a reward that scores by length so every number is worked out by hand."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pytest
from typer.testing import CliRunner

from realm_cli.cli import build_app
from realm_cli.contracts import Reward, ScoreBatch
from realm_cli.hookspecs import hookimpl


@dataclass
class LengthConfig:
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # as the bt and qrm rewards have it
    max_length: int | None = None


class LengthReward(Reward):
    """Score = the response's length in characters: it agrees with "longer wins" on every pair."""

    Config = LengthConfig

    def score_batch(self, prompts, responses):
        return ScoreBatch([float(len(r)) for r in responses])


class LengthPlugin:
    @staticmethod
    @hookimpl
    def register_rewards(register):
        register("length", LengthReward, description="test: the response length")


@pytest.fixture
def length_reward(fresh_plugins):
    fresh_plugins.reset(fresh_plugins.build(extra_plugins=[LengthPlugin]))


def _invoke(args):
    return CliRunner().invoke(build_app(), args, catch_exceptions=False)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# (chosen, rejected): lengths 4/2, 1/3, 3/3 (equal), 5/1, 2/4, 6/5
PAIRS = [("aaaa", "bb"), ("a", "bbb"), ("aaa", "bbb"), ("aaaaa", "b"), ("aa", "bbbb"), ("aaaaaa", "bbbbb")]


def test_preference_reports_length_baselines_and_the_transfer_view(tmp_path, length_reward):
    mixed = write_jsonl(tmp_path / "mixed.jsonl",
                        [{"prompt": f"q{i}", "chosen": c, "rejected": r} for i, (c, r) in enumerate(PAIRS)])
    # every chosen response shorter: "shorter wins" is perfect, the length reward always wrong
    short = write_jsonl(tmp_path / "short.jsonl",
                        [{"prompt": f"q{i}", "chosen": "a" * i, "rejected": "b" * (i + 3)} for i in range(1, 6)])
    out = tmp_path / "pref"
    result = _invoke(["eval", "preference", "--reward", "length", "--data", f"mixed={mixed}", "--data",
                      f"short={short}", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "transfer" in result.output and "longer" in result.output and "beats" in result.output
    detail = json.loads((out / "preference.json").read_text())
    m = detail["sets"]["mixed"]
    # the reward is right on pairs 1, 4, 6 (pair 3 is a score tie: wrong): 3/6
    assert m["accuracy"] == 0.5 and m["ties"] == 1 and (m["ci_resamples"], m["ci_seed"]) == (1000, 0)
    length = m["length"]
    # longer wins on pairs 1, 4, 6 = 3/6; shorter on 2, 5 = 2/6; pair 3 (equal lengths) wrong for both
    assert length["longer_wins"]["accuracy"] == 0.5 and length["shorter_wins"]["accuracy"] == pytest.approx(1 / 3)
    assert length["length_ties"] == 1
    # the rejected response is longer on pairs 2 and 5, where a length reward is always wrong: 0/2
    assert (length["rm_where_longer_rejected"]["accuracy"], length["rm_where_longer_rejected"]["n"]) == (0.0, 2)
    # the reward is "longer wins" pair for pair: margin 0 in every resample
    margin = length["margin_over_best_baseline"]
    assert length["best_baseline"] == "longer_wins"
    assert (margin["diff"], margin["ci95"], margin["p_value"], margin["significant"]) == (0.0, [0.0, 0.0], 1.0, False)
    s = detail["sets"]["short"]["length"]
    # 5 pairs, chosen always shorter: reward 0/5, shorter-wins 5/5, margin -1 in every resample
    assert detail["sets"]["short"]["accuracy"] == 0.0 and s["best_baseline"] == "shorter_wins"
    assert s["margin_over_best_baseline"]["ci95"] == [-1.0, -1.0] and s["margin_over_best_baseline"]["significant"]
    # per pair: id and whether the chosen response won (what `realm report` pairs runs on)
    assert [p["correct"] for p in detail["per_pair"]["mixed"]] == [True, False, False, True, False, True]
    assert len({p["id"] for p in detail["per_pair"]["mixed"]}) == 6
    metrics = json.loads((out / "metrics.json").read_text())["preference"]
    assert metrics["mixed"]["length"]["longer_wins"]["accuracy"] == 0.5
    # the scoring settings are recorded (preference keeps the reward's own precision: no tie rule to protect)
    assert detail["scoring"]["precision"] == "auto" and detail["scoring"]["max_length"] is None


V1_ROWS = [  # subset, chosen, rejected
    ("llmbar-natural", "aaaaa", "bbb"), ("llmbar-natural", "aa", "bbbb"), ("llmbar-natural", "aaa", "bbb"),
    ("llmbar-natural", "aaaaaa", "b"), ("llmbar-adver-manual", "a", "bbbb"), ("llmbar-adver-manual", "aa", "bbbbb"),
]


def test_reward_bench_counts_ties_reports_length_baselines_and_records_fp32(tmp_path, length_reward):
    data = write_jsonl(tmp_path / "rb.jsonl", [{"id": i, "subset": s, "prompt": f"q{i}", "chosen": c, "rejected": r}
                                               for i, (s, c, r) in enumerate(V1_ROWS)])
    out = tmp_path / "rb"
    result = _invoke(["eval", "reward-bench", "--reward", "length", "--data", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "length baselines" in result.output
    detail = json.loads((out / "reward_bench.json").read_text())
    natural, manual = detail["subsets"]["llmbar-natural"], detail["subsets"]["llmbar-adver-manual"]
    # natural: 5>3 right, 2<4 wrong, 3=3 an exact tie (wrong), 6>1 right: 2/4, one tie; manual: both wrong
    assert (natural["accuracy"], natural["exact_ties"], manual["accuracy"], manual["exact_ties"]) == (0.5, 1, 0.0, 0)
    assert detail["exact_ties"] == 1
    # natural: longer wins on pairs 1 and 4 (2/4), shorter on pair 2 (1/4), rejected longer on pair 2 only (0/1)
    assert natural["length"]["longer_wins"]["accuracy"] == 0.5
    assert natural["length"]["shorter_wins"]["accuracy"] == 0.25
    assert (natural["length"]["rm_where_longer_rejected"]["accuracy"],
            natural["length"]["rm_where_longer_rejected"]["n"]) == (0.0, 1)
    assert manual["length"]["shorter_wins"]["accuracy"] == 1.0 and manual["length"]["longer_wins"]["accuracy"] == 0
    # Chat Hard = (0.5 * 100 + 0 * 46) / 146; its interval resamples within the two subsets: manual is always 0, so
    # the section is 100/146 * (natural's resampled accuracy) ~ 100/146 * Binomial(4, 1/2) / 4, whose extremes 0
    # and 100/146 each have probability 1/16 > 2.5%: the interval is [0, 100/146]
    chat_hard = detail["sections"]["Chat Hard"]
    assert chat_hard["score"] == pytest.approx(50 / 146)
    assert chat_hard["ci95"] == pytest.approx([0.0, 100 / 146]) and detail["overall_ci95"] == chat_hard["ci95"]
    # precision auto -> fp32 (the reward block saved with the results says so); the scoring record
    assert detail["model"] == {"name": "length", "precision": "fp32", "max_length": None}
    assert detail["scoring"]["precision"] == "fp32" and detail["scoring"]["dtype"] == "float32"
    metrics = json.loads((out / "metrics.json").read_text())["reward-bench"]
    assert metrics["exact_ties"] == 1 and metrics["ci95"]["sections"]["Chat Hard"] == chat_hard["ci95"]
    assert metrics["length_baselines"]["llmbar-natural"]["longer_wins"] == 0.5
    # an explicit bf16 is kept, and recorded
    out2 = tmp_path / "rb-bf16"
    assert _invoke(["eval", "reward-bench", "--reward", "length", "--data", str(data), "-o", str(out2),
                    "reward.precision=bf16"]).exit_code == 0
    detail = json.loads((out2 / "reward_bench.json").read_text())
    assert detail["model"]["precision"] == "bf16" and detail["scoring"]["dtype"] == "bfloat16"


def test_bt_reward_result_records_max_length_dtype_and_truncation(tmp_path, tiny_bert_dir):
    long_answer = " ".join(["a very long answer that goes on"] * 30)
    rows = [{"id": 0, "subset": "llmbar-natural", "prompt": "Hi?", "chosen": "Hello.", "rejected": "Go."},
            {"id": 1, "subset": "llmbar-natural", "prompt": "Why?", "chosen": long_answer, "rejected": "No."}]
    data = write_jsonl(tmp_path / "rb.jsonl", rows)
    out = tmp_path / "rb"
    result = _invoke(["eval", "reward-bench", "--reward", "bt", "--data", str(data), "-o", str(out),
                      f"reward.model={tiny_bert_dir}", "reward.max_length=32", "reward.device=cpu"])
    assert result.exit_code == 0, result.output
    scoring = json.loads((out / "reward_bench.json").read_text())["scoring"]
    # four distinct responses, only the long one over 32 tokens
    assert scoring["max_length"] == 32 and scoring["precision"] == "fp32" and scoring["dtype"] == "float32"
    assert scoring["truncated_inputs"] == 1 and "cut order" in scoring["truncation"]
    assert json.loads((out / "metrics.json").read_text())["reward-bench"]["scoring"]["max_length"] == 32
