"""`realm eval reward-bench` end to end with the packaged MiniLM embedding reward on the real LLMBar files."""

import json

import pytest
from typer.testing import CliRunner

from support.shared import shared_file
from realm_cli.evaluate import reward_bench as rbs
from realm_cli.cli import build_app


def _invoke(args):
    return CliRunner().invoke(build_app(), args, catch_exceptions=False)


def test_llmbar_gives_a_partial_chat_hard_weighted_by_example_counts(tmp_path):
    shared_file("llmbar/LLMBar/Adversarial/GPTOut/dataset.json")
    recipe = tmp_path / "eval-llmbar.yaml"
    out = tmp_path / "rb"
    recipe.write_text(f"""# realm eval --recipe {recipe}
command: eval
output_dir: {out}
evaluators:
  - name: reward-bench
    reward: {{name: embedding}}
    data:
      - {{name: llmbar, subsets: [llmbar-adver-GPTOut, llmbar-adver-manual], limit: 60}}
""")
    result = _invoke(["eval", "--recipe", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "Chat Hard" in result.output and "partial" in result.output
    detail = json.loads((out / "reward_bench.json").read_text())
    rows = detail["per_pair"]
    counts = {s: sum(1 for r in rows if r["subset"] == s) for s in ("llmbar-adver-GPTOut", "llmbar-adver-manual")}
    # all 47 GPTOut pairs (its published size), then the first 13 Manual pairs up to the limit
    assert counts == {"llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 13}
    acc = {}
    for subset in counts:  # recompute from the saved per-pair scores with strict >
        subset_rows = [r for r in rows if r["subset"] == subset]
        assert all(r["results"] == int(r["scores_chosen"] > r["scores_rejected"]) for r in subset_rows)
        acc[subset] = sum(r["scores_chosen"] > r["scores_rejected"] for r in subset_rows) / len(subset_rows)
    assert detail["results"] == pytest.approx(acc)
    # weighted by the official EXAMPLE_COUNTS (47, 46), not by how many pairs were scored
    expected = (acc["llmbar-adver-GPTOut"] * 47 + acc["llmbar-adver-manual"] * 46) / 93
    chat_hard = detail["sections"]["Chat Hard"]
    assert chat_hard["score"] == pytest.approx(expected) and chat_hard["partial"] is True
    assert detail["overall"] == pytest.approx(expected) and detail["missing_sections"] == ["Chat", "Safety",
                                                                                           "Reasoning"]
    metrics = json.loads((out / "metrics.json").read_text())["reward-bench"]
    assert metrics["sections"]["Chat Hard"] == pytest.approx(expected) and metrics["partial"] is True
    assert (out / "reward_bench.png").stat().st_size > 1000


def test_rewardbench2_shape_scores_best_of_four(tmp_path):
    rows = []
    for item, (prompt, chosen, rejected) in enumerate([
        ("How do I boil an egg?", "Put the egg in boiling water for about nine minutes, then cool it.",
         ["Eggs are laid by hens.", "I like turtles.", "Boil water."]),
        ("Name a prime number.", "Seven is a prime number.",
         ["The ocean is blue.", "Bananas are yellow.", "Numbers are fun to count."]),
    ]):
        rows += [{"id": f"{item}", "prompt": prompt, "chosen": chosen, "rejected": r, "subset": "Focus"}
                 for r in rejected]
    data = tmp_path / "rb2.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rb2"
    result = _invoke(["eval", "reward-bench", "--reward", "embedding", "--data", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    detail = json.loads((out / "reward_bench.json").read_text())
    assert detail["protocol"] == "reward-bench-v2"
    items = detail["per_pair"]
    assert len(items) == 2 and all(len(i["scores_chosen"]) == 1 and len(i["scores_rejected"]) == 3 for i in items)
    for i in items:
        assert i["results"] == rbs.best_of_n_score(i["scores_chosen"][0], i["scores_rejected"])
    assert detail["overall"] == pytest.approx(sum(i["results"] for i in items) / 2)


def test_unknown_data_and_bad_reward_options_are_one_line_errors(tmp_path):
    result = _invoke(["eval", "reward-bench", "--reward", "embedding", "--data", "no-such-set", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "no-such-set" in result.output and "Traceback" not in result.output
    result = _invoke(["eval", "reward-bench", "--reward", "embedding", "reward.no_such_option=1", "-o",
                      str(tmp_path)])
    assert result.exit_code == 2 and "no_such_option" in result.output


def test_dry_run_prints_the_recipe_the_flags_describe():
    result = _invoke(["eval", "reward-bench", "--reward", "embedding", "--data", "llmbar", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "name: reward-bench" in result.output and "name: llmbar" in result.output


@pytest.mark.full
def test_full_llmbar_chat_hard_with_the_embedding_reward(tmp_path):
    shared_file("llmbar/LLMBar/Natural/dataset.json")
    out = tmp_path / "full"
    result = _invoke(["eval", "reward-bench", "--reward", "embedding", "--data", "llmbar", "-o", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())["reward-bench"]
    assert metrics["pairs"] == 419
    assert set(metrics["subsets"]) == set(rbs.SECTIONS["Chat Hard"]) - {"mt-bench-hard"}
