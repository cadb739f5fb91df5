"""What ``train-rm`` loads: the tokenizer and model config (enough to fit the data before any weights), the pairs
fitted and encoded for TRL, and the model itself as a single-logit sequence classifier, quantized or with LoRA."""

from __future__ import annotations

from dataclasses import dataclass

from realm_cli.data.length import PairFitter
from realm_cli.errors import RealmError
from realm_cli.rewards import rm as rmlib


def load_tokenizer_and_config(model_cfg):
    """The tokenizer (with a usable pad token) and the model's config: enough to fit and encode the data before any
    weights are loaded."""
    from transformers import AutoConfig

    from realm_cli import models

    path = models.local_path(model_cfg.name)
    rmlib.require_safetensors(path, model_cfg.name)  # refused before any data is read
    tokenizer = rmlib.load_tokenizer(path, model_cfg.name, model_cfg.trust_remote_code, model_cfg.revision)
    with models.loading(model_cfg.name):
        config = AutoConfig.from_pretrained(path, trust_remote_code=model_cfg.trust_remote_code,
                                            revision=model_cfg.revision)
    rmlib.ensure_pad_token(tokenizer, name=model_cfg.name)
    return tokenizer, config


@dataclass
class Pairs:
    """The loaded splits (records as read, length counts in ``splits.report``) and TRL's columns for them."""

    splits: object  # realm_cli.data.load.PreferenceSplits
    train: dict
    validation: dict[str, dict]
    truncated: int  # train pairs with a side cut to fit


def encode_pairs(records, fitter: PairFitter) -> tuple[dict, int]:
    """Columns for TRL (chosen_ids, rejected_ids, optional margin) plus ``length`` for the length-grouped sampler;
    each side fitted exactly as the bt reward fits it when scoring (``RMFormat.fit``)."""
    cols = {"chosen_ids": [], "rejected_ids": [], "length": []}
    with_margin = any(r.margin is not None for r in records)
    if with_margin:
        cols["margin"] = []
    cut = 0
    for r in records:
        c, j = fitter.sides(r)
        cut += c.truncated or j.truncated
        cols["chosen_ids"].append(c.ids)
        cols["rejected_ids"].append(j.ids)
        cols["length"].append(max(len(c.ids), len(j.ids)))
        if with_margin:
            cols["margin"].append(float(r.margin or 0.0))
    return cols, cut


def load_pairs(recipe, fmt: rmlib.RMFormat, *, encode_validation: bool) -> Pairs:
    """The recipe's data, length-fitted by ``fmt`` (counted per split), and encoded for TRL."""
    from realm_cli.data import load as datalib

    fitter = PairFitter(fmt, recipe.data.overlong)
    splits = datalib.load(recipe.data, fit=fitter)
    if not splits.train:
        raise RealmError(f"recipe {recipe.name!r}: the train mixture is empty after loading and length fitting")
    train, cut = encode_pairs(splits.train, fitter)
    validation = {name: encode_pairs(recs, fitter)[0]
                  for name, recs in splits.validation.items() if recs} if encode_validation else {}
    return Pairs(splits, train, validation, cut)


def quantization_config(quantization: str, precision: str):
    """QLoRA's BitsAndBytesConfig (4-bit NF4 with double quantization, or 8-bit), computing in the training
    precision. TRL's own ``get_quantization_config`` builds it from a ``trl.ModelConfig``, whose ``dtype`` is the
    compute dtype here (realm's ``model.dtype`` is the weights' and defaults to fp32)."""
    import torch
    from trl import ModelConfig
    from trl.trainer.utils import get_quantization_config

    compute = torch.bfloat16 if precision == "bf16" else torch.float16
    return get_quantization_config(ModelConfig(load_in_4bit=quantization == "4bit",
                                               load_in_8bit=quantization == "8bit", bnb_4bit_quant_type="nf4",
                                               use_bnb_nested_quant=True, dtype=compute))


def load_model(model_cfg, tokenizer, precision: str, master_weights: bool = False, bf16_base: bool = False):
    """The base model as a single-logit sequence classifier. Called after TrainingArguments exist, so that under
    ZeRO-3 ``from_pretrained`` loads the weights already partitioned (HF's deepspeed.zero.Init hook). With master
    weights the model is loaded in bf16 with eager attention: with bf16 weights eager's backward beats SDPA's on a
    CPU (measured 1.3x per MiniLM step over SDPA + autocast), while under autocast it is the slower one. With a
    bf16 base (``preflight.uses_bf16_base``, LoRA) the model is loaded in bf16 but its score head is fp32 and reads
    its input in fp32, so the head trains in fp32 and the model also runs outside autocast (the reload check)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from realm_cli import models

    path = models.local_path(model_cfg.name)
    dtype = {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16,
             "float16": torch.float16}[model_cfg.dtype]
    kwargs = {}
    if master_weights:
        dtype, kwargs["attn_implementation"] = torch.bfloat16, "eager"
    if bf16_base:
        dtype = torch.bfloat16
    lora = model_cfg.lora
    if lora is not None and lora.quantization != "none":
        kwargs["quantization_config"] = quantization_config(lora.quantization, precision)
    rmlib.require_safetensors(path, model_cfg.name)  # a pickled checkpoint runs code on load
    # A fresh score head is the point of training; transformers' "newly initialized" load report would only alarm.
    with models.loading(model_cfg.name), rmlib.fresh_head_expected():
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=dtype, trust_remote_code=model_cfg.trust_remote_code,
            revision=model_cfg.revision, use_safetensors=True, **kwargs)
    rmlib.ensure_pad_token(tokenizer, model, model_cfg.name)
    if master_weights:  # the BT loss (and TRL's accuracy/centering) in fp32, not on bf16-rounded rewards
        model.register_forward_hook(_float_logits)
    if bf16_base:  # before PEFT wraps the model: its modules_to_save copy of the head is then fp32 too
        for name in rmlib.head_modules(model):
            head = getattr(model, name).float()
            head.register_forward_pre_hook(_float_inputs)
    return model


def _float_inputs(module, args):
    import torch

    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def _float_logits(module, args, output):
    output.logits = output.logits.float()
    return output


def peft_config(model, lora):
    """The LoRA config, the score head saved in full (trl#1379). Built by hand, not by TRL's ``get_peft_config``:
    its ``ModelConfig`` turns a one-entry ``target_modules`` list into a bare string, which PEFT reads as a regex
    that must match a module's whole dotted name, so ``target_modules: [query]`` would match nothing and fail."""
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.SEQ_CLS, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules if isinstance(lora.target_modules, list)
                      else ([m.strip() for m in lora.target_modules.split(",")]
                            if lora.target_modules != "all-linear" else "all-linear"),
                      modules_to_save=rmlib.head_modules(model))
