"""The qrm reward on a tiny random model saved WITH custom code (loaded through trust_remote_code, like
nicolinho/QRM-Llama3.1-8B-v2) that follows QRM's output contract: ``score`` (the expectation) and
``reward_quantiles`` (19), read at the Llama-3 assistant header, raising when the template is not Llama-3's."""

from __future__ import annotations

import json

import pytest

from realm_cli.errors import RealmError
from support.templates import LLAMA3
from realm_cli.rewards.options import spec_from_cli

MODELING = '''
import os
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaModel, PreTrainedModel
from transformers.utils import ModelOutput


if os.environ.get("REALM_TEST_CODE_RAN"):  # proves whether loading the folder ran its Python
    open(os.environ["REALM_TEST_CODE_RAN"], "w").write("ran")


class TinyQRMConfig(LlamaConfig):
    model_type = "tiny_qrm"


@dataclass
class QRMOutput(ModelOutput):
    score: torch.FloatTensor = None
    reward_quantiles: torch.FloatTensor = None


class TinyQRM(PreTrainedModel):
    config_class = TinyQRMConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.quantile_head = torch.nn.Linear(config.hidden_size, 19)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        marker = self.config.assistant_marker
        positions = []
        for row in input_ids.tolist():
            found = [i for i in range(len(row) - len(marker) + 1) if row[i:i + len(marker)] == marker]
            if not found:
                raise ValueError("assistant header token run not found: use the Llama-3 chat template")
            positions.append(found[-1] + len(marker) - 1)
        lengths = attention_mask.sum(-1) - 1 if attention_mask is not None else torch.full((len(positions),), input_ids.shape[1] - 1)
        h = hidden[torch.arange(len(positions)), torch.tensor(positions)] + hidden[torch.arange(len(positions)), lengths]
        q = torch.sort(self.quantile_head(h).float(), dim=-1).values
        return QRMOutput(score=q.mean(-1, keepdim=True), reward_quantiles=q)
'''


def save_tiny_qrm(out, tokenizer_source, *, llama3: bool) -> str:
    import sys

    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_source)
    tok.add_special_tokens({"additional_special_tokens": ["<|begin_of_text|>", "<|start_header_id|>",
                                                          "<|end_header_id|>", "<|eot_id|>"],
                            "pad_token": "<|finetune_right_pad_id|>"})
    # the header run without its trailing blank line, whose tokens depend on the text that follows
    marker = tok("<|eot_id|><|start_header_id|>assistant<|end_header_id|>", add_special_tokens=False)["input_ids"]
    if llama3:
        tok.chat_template = LLAMA3
    out.mkdir()
    (out / "modeling_tiny_qrm.py").write_text(MODELING)
    sys.path.insert(0, str(out))
    try:
        import modeling_tiny_qrm as mod
    finally:
        sys.path.remove(str(out))
    torch.manual_seed(0)
    cfg = mod.TinyQRMConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, intermediate_size=64, max_position_embeddings=1024,
                            pad_token_id=tok.pad_token_id, assistant_marker=marker)
    mod.TinyQRM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "modeling_tiny_qrm.TinyQRMConfig",
                          "AutoModelForSequenceClassification": "modeling_tiny_qrm.TinyQRM"}
    (out / "config.json").write_text(json.dumps(config))
    return str(out)


@pytest.fixture(scope="module")
def tiny_qrm_dir(tmp_path_factory, smollm2_dir):
    return save_tiny_qrm(tmp_path_factory.mktemp("qrm") / "llama3", smollm2_dir, llama3=True)


PROMPTS = [[{"role": "user", "content": "What is 2 + 2?"}],
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Red."}, {"role": "user", "content": "Another one, please?"}],
           [{"role": "user", "content": "Tell me a very long story about a cat who sailed the seven seas."}]]
RESPONSES = ["4.", "Blue.", "Once upon a time a cat named Tom found a boat and set off across the sea."]


def test_scores_and_quantiles_match_the_plain_model_call(tiny_qrm_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from realm_cli.rewards.build import build_reward

    reward = build_reward(spec_from_cli("qrm", [f"reward.model={tiny_qrm_dir}", "reward.precision=fp32",
                                                "reward.batch_size=2", "reward.trust_remote_code=true"]))
    batch = reward.score_batch(PROMPTS, RESPONSES)
    tok = AutoTokenizer.from_pretrained(tiny_qrm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_qrm_dir, trust_remote_code=True).eval()
    for prompt, response, score, quantiles in zip(PROMPTS, RESPONSES, batch.scores, batch.extras["quantiles"]):
        ids = tok.apply_chat_template(prompt + [{"role": "assistant", "content": response}], return_tensors="pt",
                                      return_dict=True)
        with torch.no_grad():
            out = model(**ids)
        assert score == pytest.approx(float(out.score.reshape(-1)[0]), abs=1e-5)
        assert quantiles == pytest.approx(out.reward_quantiles[0].tolist(), abs=1e-5)
        assert len(quantiles) == 19 and quantiles == sorted(quantiles)
    assert len(set(batch.scores)) == 3 and batch.extras["truncated"] == [False] * 3
    reward.pad_id = None  # as with a tokenizer that pads with <|eot_id|>: only equal lengths share a batch
    assert reward.score(PROMPTS, RESPONSES) == pytest.approx(batch.scores, abs=1e-5)


def test_a_tokenizer_without_the_llama3_template_is_refused(tmp_path, smollm2_dir):
    from realm_cli.rewards.build import build_reward

    chatml = save_tiny_qrm(tmp_path / "chatml", smollm2_dir, llama3=False)
    reward = build_reward(spec_from_cli("qrm", [f"reward.model={chatml}", "reward.precision=fp32",
                                                "reward.trust_remote_code=true"]))
    with pytest.raises(RealmError, match="not Llama-3's"):
        reward.score(PROMPTS[:1], RESPONSES[:1])


def test_the_real_model_fails_clearly_offline(monkeypatch):
    from realm_cli.rewards.build import build_reward

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RealmError, match="qrm-llama3.1-8b-v2"):
        build_reward(spec_from_cli("qrm", []))


def test_a_model_folder_with_custom_code_runs_none_of_it_unless_asked(tiny_qrm_dir, tmp_path, monkeypatch):
    from realm_cli.rewards.build import build_reward

    marker = tmp_path / "ran"
    monkeypatch.setenv("REALM_TEST_CODE_RAN", str(marker))
    with pytest.raises(RealmError, match=r"reward.trust_remote_code=true") as info:
        build_reward(spec_from_cli("qrm", [f"reward.model={tiny_qrm_dir}", "reward.precision=fp32"]))
    assert "\n" not in str(info.value) and not marker.exists()
    with pytest.raises(RealmError, match=r"trust_remote_code"):
        build_reward(spec_from_cli("qrm", [f"reward.model={tiny_qrm_dir}", "reward.trust_remote_code=false"]))
    assert not marker.exists()
    opted_in = build_reward(spec_from_cli("qrm", [f"reward.model={tiny_qrm_dir}", "reward.precision=fp32",
                                                  "reward.trust_remote_code=true"]))
    assert type(opted_in.model).__name__ == "TinyQRM"  # opted in: the folder's own model class was used

