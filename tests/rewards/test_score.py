"""`realm score` through the real CLI with the nim reward on a fake server: table and winner, a JSONL file scored
exactly and resumed without re-scoring, bad rows located, NaN rows recorded under on_error=nan, interactive mode."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from support.fake_nim import FakeNim, fake_reward
from realm_cli.cli import build_app


def expected(prompt: str, response: str) -> float:
    return fake_reward([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}])


@pytest.fixture
def nim(tmp_path):
    with FakeNim() as fake:
        yield fake, ["--reward", "nim", f"reward.base_url={fake.base_url}", "reward.cache=false",
                     "reward.backoff_base=0.01"]


def run(*args, input=None):
    return CliRunner().invoke(build_app(), list(args), input=input)


def test_table_and_winner(nim):
    fake, reward = nim
    responses = ["first answer", "second answer", "third answer"]
    result = run("score", *reward, "--prompt", "which?", *[x for r in responses for x in ("--response", r)])
    assert result.exit_code == 0, result.output
    scores = [expected("which?", r) for r in responses]
    best = scores.index(max(scores)) + 1
    assert f"winner: response {best}" in result.output
    assert f"{scores[0]:.4f}" in result.output
    result = run("score", *reward, "--prompt", "which?", "--response", "first answer", "--json")
    assert json.loads(result.stdout.strip().splitlines()[-1])["scores"] == [scores[0]]


def write_pairs(path, n):
    rows = [{"prompt": f"question {i}", "chosen": f"good {i}", "rejected": f"bad {i}", "id": i} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_file_scoring_is_exact_and_resumable(nim, tmp_path):
    fake, reward = nim
    rows = write_pairs(tmp_path / "pairs.jsonl", 10)
    out = tmp_path / "scored.jsonl"
    first = run("score", *reward, "--input", str(tmp_path / "pairs.jsonl"), "--output", str(out), "--batch-size", "4")
    assert first.exit_code == 0, first.output
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in scored] == list(range(10))
    for row, got in zip(rows, scored):
        assert got["chosen_score"] == expected(row["prompt"], row["chosen"])
        assert got["rejected_score"] == expected(row["prompt"], row["rejected"])
    assert fake.requests == 20
    # simulate an interruption: keep 3 rows and half of the 4th, then resume
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:10])
    again = run("score", *reward, "--input", str(tmp_path / "pairs.jsonl"), "--output", str(out), "--json")
    assert again.exit_code == 0, again.output
    assert fake.requests == 20 + 7 * 2  # only the 7 missing rows were scored (the cache is off)
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in resumed) == list(range(10))
    assert json.loads(again.stdout.strip().splitlines()[-1])["resumed_past"] == 3


def test_bad_row_is_located(nim, tmp_path):
    _, reward = nim
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "a", "chosen": "x", "rejected": "y"}\n\n{"prompt": "b", "chosen": "x"}\n')
    result = run("score", *reward, "--input", str(path), "--output", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert "pairs.jsonl:3" in result.output and "'rejected'" in result.output


def test_unscorable_rows_are_null_with_the_error(nim, tmp_path):
    fake, reward = nim
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "q", "response": "fine"}\n{"prompt": "q", "response": "no [[always:500]]"}\n')
    out = tmp_path / "o.jsonl"
    strict = run("score", *reward, "reward.max_retries=0", "--input", str(path), "--output", str(out))
    assert strict.exit_code == 2 and "could not be scored" in strict.output
    result = run("score", *reward, "reward.max_retries=0", "reward.on_error=nan", "--input", str(path), "--output",
                 str(tmp_path / "o2.jsonl"))
    assert result.exit_code == 0, result.output
    good, bad = [json.loads(line) for line in (tmp_path / "o2.jsonl").read_text().splitlines()]
    assert good["score"] == expected("q", "fine")
    assert bad["score"] is None and "HTTP 500" in bad["errors"]["response"]


def test_interactive_loop(nim):
    _, reward = nim
    result = run("score", *reward, "--interactive", input="hello?\nhi there\nbye\n\n\n")
    assert result.exit_code == 0, result.output
    scores = [expected("hello?", "hi there"), expected("hello?", "bye")]
    assert f"winner: response {scores.index(max(scores)) + 1}" in result.output


def test_mode_errors():
    assert "exactly one of" in run("score", "--reward", "embedding").output
    assert "--input needs --output" in run("score", "--reward", "embedding", "--input", "x.jsonl").output


def test_an_output_realm_did_not_write_is_never_touched(nim, tmp_path):
    """A one-line JSON file, the input itself, a directory, a path under a file: each a one-line error, before the
    reward is built, and the file byte for byte as it was."""
    _, reward = nim
    inp = tmp_path / "pairs.jsonl"
    write_pairs(inp, 3)
    before = inp.read_bytes()
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"my": "notes"}')  # no trailing newline: the old resume cut it to nothing
    cases = [(foreign, "not a `realm score` output"), (inp, "is the --input file"), (tmp_path, "is a directory"),
             (foreign / "out.jsonl", "is a file, not a directory")]
    for out, message in cases:
        result = run("score", *reward, "--input", str(inp), "--output", str(out))
        assert result.exit_code == 2 and message in result.output, (out, result.output)
    assert foreign.read_text() == '{"my": "notes"}' and inp.read_bytes() == before


def test_bad_input_is_one_line_before_any_model_loads(tmp_path):
    """The bt reward on a path that is not a model would fail to load: the input error comes first."""
    cases = {"bin.jsonl": b'\xff\xfe{"prompt": 1}\n', "bad.parquet": b"not parquet at all"}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        result = run("score", "--reward", "bt", f"reward.model={tmp_path / 'no-such-model'}", "--input", str(path),
                     "--output", str(tmp_path / f"{name}.out"))
        assert result.exit_code == 2 and str(path) in result.output and "Traceback" not in result.output, name
        assert "no-such-model" not in result.output, name


def test_gzipped_input_is_read(nim, tmp_path):
    import gzip

    fake, reward = nim
    rows = [{"prompt": "q", "response": f"answer {i}"} for i in range(3)]
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.jsonl"
    assert run("score", *reward, "--input", str(path), "--output", str(out)).exit_code == 0
    assert [json.loads(x)["score"] for x in out.read_text().splitlines()] == [expected("q", r["response"])
                                                                              for r in rows]


def test_an_edited_input_does_not_keep_stale_scores(nim, tmp_path):
    _, reward = nim
    inp = tmp_path / "pairs.jsonl"
    write_pairs(inp, 3)
    out = tmp_path / "o.jsonl"
    assert run("score", *reward, "--input", str(inp), "--output", str(out)).exit_code == 0
    scored = out.read_bytes()
    lines = inp.read_text().splitlines()
    lines[1] = json.dumps({"prompt": "question 1", "chosen": "edited", "rejected": "bad 1"})
    inp.write_text("\n".join(lines) + "\n")
    result = run("score", *reward, "--input", str(inp), "--output", str(out))
    assert result.exit_code == 2 and "o.jsonl:2" in result.output and "has changed" in result.output
    assert out.read_bytes() == scored


def test_retry_failed_scores_the_failed_rows_again_and_counts_what_is_left(nim, tmp_path):
    fake, reward = nim
    inp = tmp_path / "rows.jsonl"
    inp.write_text("".join(json.dumps({"prompt": "q", "response": r}) + "\n"
                           for r in ["fine", "flaky [[fault:500,500]]", "dead [[always:500]]"]))
    out = tmp_path / "o.jsonl"
    args = ["score", *reward, "reward.max_retries=0", "reward.on_error=nan", "--input", str(inp), "--output", str(out),
            "--json"]
    first = run(*args)
    assert json.loads(first.stdout.strip().splitlines()[-1])["still_failed"] == 2
    plain = run(*args)  # a plain resume does not retry
    assert json.loads(plain.stdout.strip().splitlines()[-1])["scored_now"] == 0
    run(*args, "--retry-failed")  # the flaky row's second fault
    third = run(*args, "--retry-failed")
    summary = json.loads(third.stdout.strip().splitlines()[-1])
    assert summary["still_failed"] == 1 and summary["scored_now"] == 2
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]  # compacted: one row per input line, in input order
    assert rows[1]["score"] == expected("q", "flaky [[fault:500,500]]") and "errors" not in rows[1]
    assert rows[2]["score"] is None and "HTTP 500" in rows[2]["errors"]["response"]


def test_no_library_progress_bars_leak_when_a_model_loads(tiny_bert_dir):
    """transformers draws a 'Loading weights' bar on stderr for each load; realm keeps the libraries' bars off."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "realm_cli.cli", "score", "--reward", "bt", f"reward.model={tiny_bert_dir}",
                           "--prompt", "hi", "--response", "hello", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Loading weights" not in proc.stderr and "it/s" not in proc.stderr, proc.stderr
    assert len(json.loads(proc.stdout.strip().splitlines()[-1])["scores"]) == 1
