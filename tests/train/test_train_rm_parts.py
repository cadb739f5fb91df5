"""The train-rm job's parts on their own: the LoRA and QLoRA configs (and why TRL's builders are or are not used),
and the progress line when output is not a terminal."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from realm_cli.recipes.recipe import LoraConfig
from realm_cli.train.loading import peft_config, quantization_config


def test_one_target_module_stays_a_list(tiny_bert_dir):
    """TRL's get_peft_config would turn ["query"] into the regex "query", which matches no dotted module name."""
    from peft.tuners.tuners_utils import check_target_module_exists
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    config = peft_config(model, LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=["query"]))
    assert check_target_module_exists(config, "bert.encoder.layer.0.attention.self.query")
    assert config.modules_to_save == ["classifier"] and config.task_type == "SEQ_CLS"
    split = peft_config(model, LoraConfig(target_modules="query, value"))
    assert set(split.target_modules) == {"query", "value"}


@pytest.mark.parametrize("quantization, precision", [("4bit", "bf16"), ("4bit", "fp16"), ("8bit", "bf16")])
def test_qlora_config_is_the_hand_built_one(quantization, precision):
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if precision == "bf16" else torch.float16
    expected = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                                   bnb_4bit_use_double_quant=True)
                if quantization == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
    assert quantization_config(quantization, precision).to_dict() == expected.to_dict()


def test_progress_prints_plain_lines_when_not_a_terminal(monkeypatch):
    from rich.console import Console

    from realm_cli.train import trainer

    console = Console(stderr=True, record=True, force_terminal=False, width=120)
    monkeypatch.setattr(trainer, "console", console)
    progress = trainer.progress_callback(8)
    state = SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=0)
    progress.on_train_begin(None, state, None)
    state.global_step = 2
    progress.trainer = SimpleNamespace(running={"loss": 0.5, "accuracy": 0.75})
    progress.on_step_end(None, state, None)
    progress.on_log(None, state, None, logs={"loss": 0.6931, "accuracy": 0.5})
    progress.on_train_end(None, state, None)
    text = console.export_text()
    assert "step 2/4 loss 0.6931 acc 0.500" in text and "pairs/s" in text
