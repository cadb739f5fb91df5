"""The policy being aligned: a causal LM (full or LoRA) with a chat-template tokenizer, its frozen reference, and
saving it as a plain Hugging Face model."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

from realm_cli import models
from realm_cli.errors import RealmError
from realm_cli.recipes.recipe import ModelConfig

DEFAULT_POLICY = "smollm2-135m-instruct"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    location = models.local_path(cfg.name)
    with models.loading(cfg.name):
        tokenizer = AutoTokenizer.from_pretrained(location, revision=cfg.revision,
                                                  trust_remote_code=cfg.trust_remote_code)
    if not getattr(tokenizer, "chat_template", None):
        raise RealmError(f"model {cfg.name!r}: its tokenizer has no chat template; alignment prompts are chat "
                         f"messages, so pick an instruct/chat model (e.g. {DEFAULT_POLICY}) or add a template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    tokenizer.truncation_side = "left"  # an over-long prompt keeps its latest turns
    return tokenizer


def load_model(cfg: ModelConfig, tokenizer):
    model = models.load_causal_lm(cfg.name, dtype=cfg.dtype, device=device(), revision=cfg.revision,
                                  trust_remote_code=cfg.trust_remote_code)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = True  # generation still uses the KV cache; the trainers switch it off to train
    return model.to(device())


def peft_config(cfg: ModelConfig):
    """The peft LoraConfig for a recipe's ``model.lora`` block, or None for full fine-tuning."""
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")


def wrap_lora(model, cfg: ModelConfig):
    lora = peft_config(cfg)
    if lora is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, lora)


def is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


class Reference:
    """The frozen starting policy. With LoRA it is the same weights with the adapter switched off (no copy);
    otherwise a frozen copy, made before any update."""

    def __init__(self, policy):
        self.policy = policy
        self.copy = None
        if not is_peft(policy):
            self.copy = copy.deepcopy(policy).eval()
            self.copy.requires_grad_(False)

    @contextlib.contextmanager
    def model(self):
        if self.copy is not None:
            yield self.copy
        else:
            with self.policy.disable_adapter():
                yield self.policy


def save(model, tokenizer, out_dir: Path, *, merge_lora: bool = False, base_name: str | None = None,
         main: bool = True) -> Path:
    """Write a directory ``transformers`` (or peft, for an unmerged adapter) loads directly; an adapter records
    ``base_name`` (the alias or hub id the recipe named) as its base, so it loads on another machine too.

    Under several processes every rank calls it and ``main`` writes: a ZeRO-3 partitioned policy is gathered to
    its full (16-bit when trained so) weights on every rank first, then saved from rank 0."""
    from realm_cli.align import shards

    if is_peft(model):
        for helper in [name for name in model.peft_config if name != model.active_adapter]:
            model.delete_adapter(helper)  # e.g. TRL's frozen "ref" copy: not part of the policy
    with shards.full_weights(model):
        if main:
            out_dir.mkdir(parents=True, exist_ok=True)
            if is_peft(model) and merge_lora:
                model = model.merge_and_unload()  # the gathered weights; the shards are left as they were
            model.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
            if base_name is not None:
                models.make_adapter_portable(out_dir, base_name)
    return out_dir
