"""`realm eval preference` end to end: the embedding reward on real HH-RLHF pairs, two named validation sets."""

import json
import math

import pytest
from typer.testing import CliRunner

from support.shared import shared_file
from realm_cli.evaluate import stats as calibration
from realm_cli.cli import build_app


def test_preference_eval_per_named_set_with_calibration(tmp_path):
    shared_file("hh-rlhf/helpful-base_test.jsonl.gz")
    shared_file("hh-rlhf/harmless-base_test.jsonl.gz")
    out = tmp_path / "pref"
    result = CliRunner().invoke(build_app(), [
        "eval", "preference", "--reward", "embedding", "--data", "helpful=hh-rlhf", "--limit", "24", "-o", str(out),
        # a second named set given as an override of the evaluator block: another subset of HH-RLHF
        "sets.harmless=[{name: hh-rlhf, subset: harmless-base, limit: 24}]"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ECE" in result.output
    detail = json.loads((out / "preference.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())["preference"]
    assert set(metrics) == {"helpful", "harmless"}
    for name in ("helpful", "harmless"):
        pairs = detail["per_pair"][name]
        assert len(pairs) == 24 and metrics[name]["pairs"] == 24
        margins = [p["chosen"] - p["rejected"] for p in pairs]
        assert metrics[name]["accuracy"] == pytest.approx(sum(m > 0 for m in margins) / 24)
        assert metrics[name]["mean_margin"] == pytest.approx(sum(margins) / 24)
        assert metrics[name]["ece"] == pytest.approx(calibration.expected_calibration_error(margins))
        assert sum(b["count"] for b in detail["sets"][name]["reliability"]) == 24
        assert all(-1.0 <= p["chosen"] <= 1.0 and not math.isnan(p["chosen"]) for p in pairs)  # cosine range
    assert detail["per_pair"]["helpful"] != detail["per_pair"]["harmless"]
    assert (out / "preference.png").stat().st_size > 1000
