"""Experiment tracking through HF's integrations: real train-rm and align runs write TensorBoard event files holding
the training curve and realm's own held-out metrics; an integration that is not installed is one clear error."""

from __future__ import annotations

import pytest
from support.align_toys import char_llama_dir, one_thread  # noqa: F401 - fixtures
from support.rm_helpers import write_pairs, write_recipe

from realm_cli.errors import RealmError
from realm_cli.recipes import runner


def _scalars(log_dir) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[float]] = {}
    for events in log_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return found


def test_train_rm_reports_to_tensorboard_with_realms_heldout_metrics(tmp_path, tiny_bert_dir, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    data = write_pairs(tmp_path / "pairs.jsonl", n=32)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, out,
                          trainer={"report_to": ["tensorboard"], "run_name": "tb-test", "logging_steps": 1})
    metrics = runner.run("train-rm", str(recipe), [])
    scalars = _scalars(out / "tensorboard")
    assert len(scalars["train/loss"]) == metrics["train"]["steps"]  # one point per logged step
    (name, held_out), = metrics["validation"].items()  # validation_split: one set, "held-out"
    assert scalars[f"eval/realm/validation/{name}/accuracy"] == [pytest.approx(held_out["accuracy"])]
    assert not list((out / "checkpoints").rglob("events.out.tfevents.*"))  # not buried in the checkpoint folder


def test_report_to_names_are_checked_when_the_recipe_is_read(tmp_path, tiny_bert_dir):
    data = write_pairs(tmp_path / "pairs.jsonl", n=8)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, tmp_path / "out",
                          trainer={"report_to": ["tensorbored"]})
    with pytest.raises(RealmError, match=r"r.yaml: trainer: report_to: unknown integration 'tensorbored' \(known: .*wandb"):
        runner.run("train-rm", str(recipe), [])
    assert not (tmp_path / "out").exists()


def test_an_integration_that_is_not_installed_fails_before_training(tmp_path, tiny_bert_dir):
    from transformers.integrations import get_available_reporting_integrations

    missing = next(n for n in ("swanlab", "neptune", "dvclive") if n not in get_available_reporting_integrations())
    data = write_pairs(tmp_path / "pairs.jsonl", n=8)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_bert_dir, data, tmp_path / "out", trainer={"report_to": [missing]})
    with pytest.raises(RealmError, match=rf"trainer.report_to: {missing} not installed .*pip install"):
        runner.run("train-rm", str(recipe), [])
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_align_reports_trl_curves_and_realms_heldout_win_rate_to_tensorboard(tmp_path, char_llama_dir, one_thread,
                                                                             monkeypatch):
    pytest.importorskip("tensorboard")
    import yaml

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    recipe = tmp_path / "align.yaml"
    recipe.write_text("# realm align --recipe align.yaml\n" + yaml.safe_dump({
        "command": "align", "output_dir": str(tmp_path / "out"), "model": {"name": char_llama_dir},
        "reward": {"name": "embedding"},
        "trainer": {"name": "dpo", "rounds": 1, "k": 2, "prompts_per_round": 4, "heldout": 2, "heldout_samples": 1,
                    "max_new_tokens": 8, "learning_rate": 1e-2, "train_batch_size": 4, "bf16": False,
                    "prompts": ["hello there", "say hi", "name a color", "good morning", "bye now", "what is up"],
                    "report_to": ["tensorboard"]}}))
    metrics = runner.run("align", str(recipe), [])
    scalars = _scalars(tmp_path / "out" / "tensorboard")
    assert scalars["train/loss"]  # TRL's DPO curve
    win = [k for k in scalars if k.startswith("eval/realm/heldout/") and k.endswith("/win_rate")]
    assert len(win) == 1
    name = win[0].split("/")[3]
    assert scalars[win[0]] == [pytest.approx(metrics["heldout"][name]["win_rate"])]
    assert scalars["eval/realm/heldout/heldout_kl_to_base"] == [pytest.approx(metrics["heldout"]["heldout_kl_to_base"])]
