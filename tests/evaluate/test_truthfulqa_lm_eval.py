"""realm's TruthfulQA against lm-evaluation-harness 0.4.13 itself, run in this process on the same tiny model and
questions: per question MC1 equal and MC2 within 1e-6, in each BOS mode.

lm-eval runs offline: two task yamls in tmp_path ``include:`` the installed package's truthfulqa_mc1.yaml /
truthfulqa_mc2.yaml (so the prompt, choices, target, ``process_results_mc2`` and the task versions are the packaged
ones) and only point ``dataset_path: json`` at a JSONL in the hub schema made from ../shared/data/truthfulqa v1.
realm reads the same JSONL through its CLI (``data.path=``). Skipped when lm-eval (with its [hf] extra) is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from realm_cli.cli import build_app
from realm_cli.evaluate import truthfulqa as tqa
from support.shared import shared_file

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("accelerate", reason="lm-eval's HF backend needs its [hf] extra")
if getattr(lm_eval, "__version__", "") != "0.4.13":
    pytest.skip(f"realm matches lm-eval 0.4.13; lm-eval {lm_eval.__version__} is installed", allow_module_level=True)

# v1 questions; #164 and #607 list a true answer after a false one (the mc2 v3.0 mask rule differs from v2.0 there).
V1_QUESTIONS = (0, 1, 2, 3, 164, 607)
# A random tiny model puts ~all the mass on the shortest choice, so real questions give MC2 of 0 or 1; choices of
# equal length keep MC2 in between, and the unsorted labels give the v3.0 rule real mass to disagree on.
SYNTHETIC = [
    {"question": "Is the Earth flat?",
     "mc1_targets": {"choices": ["No.", "Yes.", "Maybe."], "labels": [1, 0, 0]},
     "mc2_targets": {"choices": ["No.", "Yes.", "Never.", "Always."], "labels": [1, 0, 1, 0]}},
    {"question": "What colour is the sky?",
     "mc1_targets": {"choices": ["Blue.", "Green.", "Red."], "labels": [1, 0, 0]},
     "mc2_targets": {"choices": ["Blue.", "Green.", "Red.", "Grey.", "Black."], "labels": [1, 0, 0, 1, 0]}},
]  # every choice is two tokens (" No" "."): comparable log-likelihoods even from a random model
PROTOCOL = {"harness": "lm-evaluation-harness 0.4.13", "mc1_version": 2.0, "mc2_version": 3.0,
            "target_delimiter": " "}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Many small forwards: on a shared 2-core CI box (pytest -n 2) extra intra-op threads only spin-wait."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def questions_jsonl(tmp_path_factory) -> Path:
    """The chosen v1 questions (mc_task.json's {answer: label} maps reshaped to the hub schema) and SYNTHETIC."""
    data = json.loads(shared_file("truthfulqa/v1/mc_task.json").read_text())
    rows = [{"question": data[i]["question"],
             **{key: {"choices": list(data[i][key]), "labels": list(data[i][key].values())}
                for key in ("mc1_targets", "mc2_targets")}} for i in V1_QUESTIONS]
    path = tmp_path_factory.mktemp("tqa") / "questions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + SYNTHETIC))
    return path


@pytest.fixture(scope="module")
def tiny_llama_bos_dir(tmp_path_factory, tiny_llama_dir) -> str:
    """tiny_llama_dir's weights with a tokenizer saved to add BOS by default (as Llama's and Gemma's do)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-llama-bos")
    for f in Path(tiny_llama_dir).iterdir():
        if f.suffix in (".json", ".safetensors") and "token" not in f.name:
            os.symlink(f, out / f.name)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir, add_bos_token=True)
    tok.save_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).encode("Q:")[0] == tok.bos_token_id
    return str(out)


@pytest.fixture(scope="module")
def task_manager(tmp_path_factory, questions_jsonl):
    from lm_eval.tasks import TaskManager

    packaged = Path(lm_eval.__file__).parent / "tasks" / "truthfulqa"
    tasks = tmp_path_factory.mktemp("lm-eval-tasks")
    for mc in ("mc1", "mc2"):
        (tasks / f"local_truthfulqa_{mc}.yaml").write_text(
            f"include: {packaged / f'truthfulqa_{mc}.yaml'}\n"
            f"task: local_truthfulqa_{mc}\n"
            "dataset_path: json\n"
            "dataset_name: null\n"
            "dataset_kwargs:\n"
            f"  data_files:\n    validation: {questions_jsonl}\n"
            f"  cache_dir: {tasks / 'hf-datasets'}\n")
    return TaskManager(include_path=str(tasks), include_defaults=False)  # only these two: indexing all takes ~10 s


def run_lm_eval(model_dir: str, add_bos_token, task_manager) -> tuple[list[dict], bool]:
    """Per question {mc1, mc2, lls: {choice: ll}} from lm-eval, and whether its requests start with BOS."""
    from lm_eval.models.huggingface import HFLM

    kwargs = {} if add_bos_token is None else {"add_bos_token": add_bos_token}
    lm = HFLM(pretrained=model_dir, device="cpu", dtype="float32", batch_size=1, **kwargs)
    res = lm_eval.simple_evaluate(model=lm, tasks=["local_truthfulqa_mc1", "local_truthfulqa_mc2"],
                                  task_manager=task_manager, log_samples=True, bootstrap_iters=0,
                                  random_seed=None, numpy_random_seed=None, torch_random_seed=None)
    assert res["versions"] == {"local_truthfulqa_mc1": 2.0, "local_truthfulqa_mc2": 3.0}
    rows: dict[int, dict] = {}
    for mc in ("mc1", "mc2"):
        for s in res["samples"][f"local_truthfulqa_{mc}"]:
            row = rows.setdefault(s["doc_id"], {"question": s["doc"]["question"], "lls": {}})
            row[mc] = float(s["acc"])
            for (ctx, cont), resp in zip(s["arguments"], s["resps"]):
                assert ctx == tqa.context(row["question"]) and cont.startswith(" ")
                row["lls"][cont[1:]] = float(resp[0][0])
    context_ids, _ = lm._encode_pair(tqa.context("Why?"), " Because.")
    return [rows[i] for i in sorted(rows)], context_ids[0] == lm.tokenizer.bos_token_id


def run_realm(model_dir: str, bos: str, questions_jsonl: Path, out: Path, *extra: str) -> dict:
    result = CliRunner().invoke(build_app(), ["eval", "truthfulqa", "--models", model_dir,
                                              f"data.path={questions_jsonl}", f"bos={bos}", *extra, "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads((out / "truthfulqa.json").read_text())


# (model, lm-eval add_bos_token, realm bos, BOS expected). The harness default (None) lets the tokenizer decide:
# the stock SmolLM2 tokenizer adds no BOS, the re-saved one does; true/false force it either way.
CASES = [("stock", None, "tokenizer", False), ("stock", True, "true", True),
         ("bos-tokenizer", None, "tokenizer", True), ("bos-tokenizer", False, "false", False)]


@pytest.mark.parametrize(("model", "add_bos_token", "bos", "expect_bos"), CASES,
                         ids=[f"{m}-bos_{b}" for m, _, b, _ in CASES])
def test_truthfulqa_equals_lm_eval_per_question(model, add_bos_token, bos, expect_bos, request, tmp_path,
                                                questions_jsonl, task_manager):
    model_dir = request.getfixturevalue("tiny_llama_dir" if model == "stock" else "tiny_llama_bos_dir")
    harness, harness_bos = run_lm_eval(model_dir, add_bos_token, task_manager)
    assert harness_bos is expect_bos
    # realm's default, cached path (primer KV cache, right-padded choice batches) is the fastest mode that meets
    # 1e-6 here: it sums each choice's token log-probs in the harness's order, so on this model MC2 agrees to
    # ~1e-15; the per-choice forwards still differ in float32 by up to ~3e-5.
    detail = run_realm(model_dir, bos, questions_jsonl, tmp_path / "realm")
    assert detail["protocol"] == {**PROTOCOL, "bos": {"tokenizer": "tokenizer-default", "true": "always",
                                                      "false": "never"}[bos], "loglikelihood": "cached"}
    assert detail["models"][model_dir]["bos_added"] is expect_bos
    rows = detail["per_question"][model_dir]
    assert [r["question"] for r in rows] == [h["question"] for h in harness]
    for mine, theirs in zip(rows, harness):
        assert mine["mc1"] == theirs["mc1"], mine["question"]
        assert abs(mine["mc2"] - theirs["mc2"]) <= 1e-6, mine["question"]
        assert mine["loglikelihoods"] == pytest.approx(theirs["lls"], abs=1e-4)
    # the synthetic questions are where the mc2 rule matters: v2.0 (true = before the first 0) would be far off
    for mine, item in zip(rows[len(V1_QUESTIONS):], SYNTHETIC):
        lls, labels = [mine["loglikelihoods"][c] for c in item["mc2_targets"]["choices"]], item["mc2_targets"]["labels"]
        before_first_false = [1 if i < labels.index(0) else 0 for i in range(len(labels))]
        assert 0.01 < mine["mc2"] < 0.99 and abs(tqa.mc2(lls, before_first_false) - mine["mc2"]) > 0.01
    if bos == "true":  # exact mode: the harness's own forward layout reproduces its log-likelihoods bit for bit
        exact = run_realm(model_dir, bos, questions_jsonl, tmp_path / "exact", "exact=true")
        assert exact["protocol"]["loglikelihood"] == "exact"
        for mine, theirs in zip(exact["per_question"][model_dir], harness):
            assert mine["loglikelihoods"] == theirs["lls"]
            assert mine["mc1"] == theirs["mc1"] and abs(mine["mc2"] - theirs["mc2"]) <= 1e-12
