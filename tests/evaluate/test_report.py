"""`realm report`, `realm verify` and pipeline recipes (`realm run --recipe <pipeline>`)."""

import json
import shutil

from typer.testing import CliRunner

from support.shared import REPO, shared_file
from realm_cli.evaluate import verify as run_verify
from realm_cli.cli import build_app


def _invoke(args):
    return CliRunner().invoke(build_app(), args, catch_exceptions=False)


def _run_dir(path, command, metrics):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "recipe.yaml").write_text(f"# realm {command} --recipe x\ncommand: {command}\n")
    return path


def test_report_lines_up_runs_on_shared_metric_paths(tmp_path):
    a = _run_dir(tmp_path / "rm-a", "train-rm", {"eval": {"accuracy": 0.61, "mean_margin": 0.4}, "steps": 120})
    b = _run_dir(tmp_path / "rm-b", "train-rm", {"eval": {"accuracy": 0.66}, "note": "text is skipped"})
    out = tmp_path / "report"
    result = _invoke(["report", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "eval.accuracy" in result.output and "0.66" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["shared"] == ["eval.accuracy"]
    assert set(report["keys"]) == {"eval.accuracy", "eval.mean_margin", "steps"}
    assert [r["metrics"].get("eval.accuracy") for r in report["runs"]] == [0.61, 0.66]
    assert [r["command"] for r in report["runs"]] == ["train-rm", "train-rm"]
    assert (out / "report.png").stat().st_size > 1000


def test_report_on_a_directory_without_metrics_is_one_line_error(tmp_path):
    result = _invoke(["report", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no metrics.json" in result.output


def test_verify_loads_model_and_tokenizer_and_catches_a_broken_model(tmp_path, tiny_bert_dir):
    run = _run_dir(tmp_path / "run", "eval", {"accuracy": 0.5})
    shutil.copyfile(REPO / "realm_plugins" / "recipes" / "eval" / "eval-truthfulqa-smollm2.yaml", run / "recipe.yaml")
    shutil.copytree(tiny_bert_dir, run / "model")
    result = _invoke(["verify", str(run)])
    assert result.exit_code == 0, result.output
    checks = {c.artifact: c for c in run_verify.verify(run)}
    assert all(c.ok for c in checks.values())
    assert checks[str(run / "model")].detail.startswith("BertForSequenceClassification + tokenizer load")
    assert checks[str(run / "recipe.yaml")].detail == "valid eval recipe"
    weights = next((run / "model").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # a torn write
    result = _invoke(["verify", str(run)])
    assert result.exit_code == 2 and "FAIL" in result.output and "model" in result.output


def test_verify_loads_lora_adapters_of_policies_and_reward_models(tmp_path, tiny_llama_dir, tiny_bert_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    run = _run_dir(tmp_path / "run", "align", {"reward": 0.5})
    shutil.copyfile(REPO / "realm_plugins" / "recipes" / "align" / "align-dpo-smollm2-cpu.yaml", run / "recipe.yaml")
    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                            LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"]))
    policy.save_pretrained(run / "policy")  # what `realm align` leaves with LoRA and merge_lora=false
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(run / "policy")
    rm = get_peft_model(AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir),
                        LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"],
                                   modules_to_save=["classifier"]))
    rm.save_pretrained(run / "rm")  # a LoRA reward model (score head saved in full)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(run / "rm")

    checks = {c.artifact: c for c in run_verify.verify(run)}
    assert checks[str(run / "policy")].ok, checks[str(run / "policy")].detail
    assert checks[str(run / "policy")].detail.startswith("LoRA adapter (CAUSAL_LM) + tokenizer load")
    assert checks[str(run / "rm")].ok, checks[str(run / "rm")].detail
    assert checks[str(run / "rm")].detail.endswith("output shape (1, 1)")


def test_verify_reports_missing_metrics(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _invoke(["verify", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "metrics.json" in result.output


def test_pipeline_dry_run_lists_every_step_of_the_shipped_pipeline():
    result = _invoke(["run", "--recipe", "pipeline-cpu", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("realm ")]
    assert [line.split()[1] for line in lines] == ["train-rm", "align", "align", "eval", "verify", "report"]
    assert "reward.name=blend" in lines[1] and "reward.name=bt" in lines[2]


def test_pipeline_with_a_bad_step_fails_before_any_work(tmp_path):
    recipe = tmp_path / "pipe.yaml"
    recipe.write_text("# realm run --recipe pipe.yaml\ncommand: pipeline\nsteps:\n"
                      "  - {run: eval, recipe: eval-pipeline-cpu}\n  - {run: train-rm, recipe: eval-pipeline-cpu}\n")
    result = _invoke(["run", "--recipe", str(recipe)])
    assert result.exit_code == 2 and "steps[1]" in result.output and "not train-rm" in result.output
    result = _invoke(["recipes", "validate", str(recipe)])  # validating a pipeline validates its steps' recipes
    assert result.exit_code == 2 and "steps[1]" in result.output and "not train-rm" in result.output


def test_a_pipeline_under_eval_is_one_line_naming_realm_run():
    result = CliRunner().invoke(build_app(), ["eval", "--recipe", "pipeline-cpu", "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: recipe 'pipeline-cpu' is a pipeline recipe: run it with "
                                     "`realm run --recipe pipeline-cpu`")
    result = CliRunner().invoke(build_app(), ["run", "--recipe", "eval-pipeline-cpu", "--dry-run"])
    assert result.exit_code == 2 and "run it with `realm eval --recipe eval-pipeline-cpu`" in result.stderr


def test_pipeline_runs_eval_verify_and_report_steps(tmp_path):
    shared_file("llmbar/LLMBar/Adversarial/GPTOut/dataset.json")
    ev = tmp_path / "eval-small.yaml"
    ev.write_text(f"""# realm eval --recipe {ev}
command: eval
output_dir: {tmp_path / 'runs' / 'eval'}
evaluators:
  - name: reward-bench
    reward: {{name: embedding}}
    data: [{{name: llmbar, subsets: [llmbar-adver-GPTOut], limit: 8}}]
""")
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(f"""# realm run --recipe {pipe}
command: pipeline
output_dir: {tmp_path / 'runs' / 'pipe'}
steps:
  - {{run: eval, recipe: {ev}}}
  - {{run: verify, recipe: {ev}}}
  - {{run: report}}
""")
    result = _invoke(["run", "--recipe", str(pipe)])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    report = json.loads((tmp_path / "runs" / "pipe" / "report.json").read_text())
    assert report["runs"][0]["metrics"]["reward-bench.pairs"] == 8
    assert "reward-bench.sections.Chat Hard" in report["keys"]


def test_eval_recipe_takes_dotted_overrides_after_recipe(tmp_path):
    result = _invoke(["eval", "--recipe", "eval-truthfulqa-smollm2", f"output_dir={tmp_path / 'x'}",
                      "evaluators=[{name: truthfulqa, batch_size: 7}]", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"output_dir: {tmp_path / 'x'}" in result.output and "batch_size: 7" in result.output
    result = _invoke(["eval", "--recipe", "eval-truthfulqa-smollm2", "evaluators=[{name: truthfulqa, batch: 7}]"])
    assert result.exit_code == 2 and "evaluators[0].batch: unknown key" in result.output


def test_report_without_o_writes_beside_its_inputs_not_into_the_cwd(tmp_path, monkeypatch):
    a = _run_dir(tmp_path / "runs" / "rm-a", "train-rm", {"eval": {"accuracy": 0.61}})
    b = _run_dir(tmp_path / "runs" / "rm-b", "train-rm", {"eval": {"accuracy": 0.66}})
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = _invoke(["report", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert list(cwd.iterdir()) == []  # nothing in the current directory
    written = tmp_path / "runs" / "report" / "report.json"
    assert json.loads(written.read_text())["shared"] == ["eval.accuracy"]
    assert str(written) in result.output.replace("\n", "")  # the destination is said, not silent


def test_report_png_draws_each_metric_in_its_own_panel_on_its_own_scale(tmp_path):
    from realm_cli.evaluate import report as run_report

    metrics = lambda acc, pairs: {"eval": {"accuracy": acc, "pairs": pairs}}  # noqa: E731
    a = _run_dir(tmp_path / "a", "eval", metrics(0.31, 400))
    b = _run_dir(tmp_path / "b", "eval", metrics(0.58, 410))
    out = tmp_path / "out"
    result = _invoke(["report", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["plot"] == ["eval.accuracy", "eval.pairs"]
    assert (out / "report.png").stat().st_size > 1000
    fig = run_report.figure(report, report["plot"])
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {"eval.accuracy", "eval.pairs"}
    assert panels["eval.accuracy"].get_ylim()[1] < 1.0  # 0.31 and 0.58 fill their own axis
    assert panels["eval.pairs"].get_ylim()[1] > 400
    heights = [p.get_height() for p in panels["eval.accuracy"].patches]
    assert heights == [0.31, 0.58]
