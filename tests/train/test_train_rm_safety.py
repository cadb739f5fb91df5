"""What train-rm and the bt reward refuse in one line, never a traceback: a corrupt checkpoint to --resume from and
a model folder whose only weights are a pickle (pytorch_model.bin runs code when unpickled)."""

from __future__ import annotations

import shutil

import pytest
from support.rm_helpers import write_pairs, write_recipe
from typer.testing import CliRunner

from realm_cli.cli import build_app
from realm_cli.errors import RealmError
from realm_cli.recipes import runner
from realm_cli.train.preflight import last_checkpoint


def _recipe(tmp_path, model):
    data = write_pairs(tmp_path / "pairs.jsonl", n=16)
    return write_recipe(tmp_path / "r.yaml", model, data, tmp_path / "out", trainer={"max_steps": 2})


def test_resume_from_a_corrupt_trainer_state_is_one_line(tmp_path, tiny_bert_dir):
    recipe = _recipe(tmp_path, tiny_bert_dir)
    for step, text in ((2, '{"global_step": 2}'), (4, '{"global_step": 4, "log_hist')):  # killed mid-write
        ckpt = tmp_path / "out" / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text(text)
    with pytest.raises(RealmError, match=r"checkpoints/checkpoint-4/trainer_state.json: not valid JSON \(.+\); "
                                         r"delete that checkpoint or start without --resume"):
        last_checkpoint(tmp_path / "out" / "checkpoints")
    result = CliRunner().invoke(build_app(), ["train-rm", "--recipe", str(recipe), "--resume"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "not valid JSON" in result.output
    assert "delete that checkpoint or start without --resume" in " ".join(result.output.split())


@pytest.fixture
def pickled_bert(tmp_path, tiny_bert_dir):
    """The tiny model with its weights as a pytorch_model.bin pickle and no safetensors."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_bert_dir, folder)
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def test_a_pickled_model_is_refused_for_scoring_and_training(tmp_path, pickled_bert):
    from realm_cli.rewards import rm

    with pytest.raises(RealmError, match=r"pytorch_model.bin is a pickle .*realm loads safetensors only"):
        rm.load(str(pickled_bert))
    recipe = _recipe(tmp_path, str(pickled_bert))
    with pytest.raises(RealmError, match="realm loads safetensors only"):
        runner.run("train-rm", str(recipe), [])
    assert not (tmp_path / "out" / "checkpoints").exists()  # refused before training
    result = CliRunner().invoke(build_app(), ["train-rm", "--recipe", str(recipe)])
    assert result.exit_code == 2 and "Traceback" not in result.output and "safetensors only" in result.output
