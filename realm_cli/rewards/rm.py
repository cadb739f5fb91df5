"""Reward-model helpers shared by the ``bt`` trainer and the ``bt`` reward: one way to turn a conversation into
tokens, one way to load a reward-model directory, one way to score.

Training and scoring must format identically, so both go through ``RMFormat.fit``:
- tokenizers with a chat template: the template applied to ``prompt + [assistant: response]``;
- tokenizers without one (BERT, DeBERTa): a sentence pair ``(rendered prompt, response)``, the way
  OpenAssistant's DeBERTa reward models are called, so such hub RMs score as their authors intended.
Over-long inputs are fitted by realm's one cut order (``realm_cli.data.length``), the same for training and scoring.
The format is saved in ``realm_rm.json`` next to the weights.

Why this module is long: format, segment ids, loading (safetensors only, LoRA, heads) and scoring of one RM
directory must agree with each other; apart they would only call each other.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from realm_cli.contracts import Message
from realm_cli.data.length import Fitted, fit_input
from realm_cli.errors import RealmError

RM_FILE = "realm_rm.json"
PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
DEFAULT_MAX_LENGTH = 1024


def render_plain(prompt: Sequence[Message]) -> str:
    """A single user turn is its text; longer conversations are ``Role: text`` blocks."""
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return prompt[0]["content"]
    return "\n\n".join(f"{PLAIN_ROLES.get(m['role'], m['role'].title())}: {m['content']}" for m in prompt)


@dataclass
class RMInfo:
    """What a realm-trained RM directory records about itself (``realm_rm.json``)."""

    format: Literal["chat_template", "pair"]
    max_length: int
    reward_mean: float | None = None
    reward_std: float | None = None
    base_model: str | None = None
    lora: bool = False
    segment_ids: bool = False  # trained with BERT-style segment ids (see ``attach_segment_ids``); older RMs were not

    def save(self, directory: Path) -> None:
        (Path(directory) / RM_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, directory: Path) -> RMInfo | None:
        path = Path(directory) / RM_FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))


class RMFormat:
    """Conversation -> token ids for one tokenizer, fitted to ``max_length`` tokens."""

    def __init__(self, tokenizer, max_length: int, format: str | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.format = format or ("chat_template" if getattr(tokenizer, "chat_template", None) else "pair")
        # Over-long texts are measured here before being fitted; the tokenizer's "longer than the maximum" warning
        # (HF's warn-once flag) would suggest they reach the model uncut.
        getattr(tokenizer, "deprecation_warnings", {})["sequence-length-is-longer-than-the-specified-maximum"] = True
        if self.format == "chat_template" and not getattr(tokenizer, "chat_template", None):
            raise RealmError("this reward model was trained with a chat template but its tokenizer has none")
        self.segments: Segments | None = None
        if self.format == "pair":
            self._layout = _pair_layout(tokenizer)
            self.segments = _segments(tokenizer, self._layout)

    def fit(self, prompt: Sequence[Message], response: str) -> Fitted:
        """The input fitted to ``max_length`` by realm's one cut order (``realm_cli.data.length``): the ids, the
        text they render and what was cut. Training, scoring and ``realm data inspect`` all fit through here."""
        return fit_input(self.render, prompt, response, self.max_length, tokens=lambda t: len(self._tok(t)))

    def encode(self, prompt: Sequence[Message], response: str) -> tuple[list[int], bool]:
        """Token ids and whether anything was cut to fit (``fit`` without the details)."""
        fitted = self.fit(prompt, response)
        return fitted.ids, fitted.truncated

    def render(self, prompt: Sequence[Message], response: str) -> list[int]:
        """Token ids of the unfitted input: the chat template over ``prompt + [assistant: response]``, or the
        tokenizer's own sentence pair ``(render_plain(prompt), response)``."""
        if self.format == "pair":
            prefix, middle, suffix = self._layout
            return prefix + self._tok(render_plain(prompt)) + middle + self._tok(response) + suffix
        text = self.tokenizer.apply_chat_template(list(prompt) + [{"role": "assistant", "content": response}],
                                                  tokenize=False)
        return self._tok(text)

    def count(self, prompt: Sequence[Message], response: str) -> int:
        """Tokens of the unfitted input: realm's one token counter (``max_length`` applies to this)."""
        return len(self.render(prompt, response))

    def tokens(self, text: str) -> int:
        """Tokens of a bare text (no template, no special tokens)."""
        return len(self._tok(text))

    def _tok(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def _pair_layout(tokenizer) -> tuple[list[int], list[int], list[int]]:
    """The special tokens a tokenizer puts before, between and after a sentence pair ([CLS] a [SEP] b [SEP],
    <s> a </s></s> b </s>, ...), read from the tokenizer itself so fitted ids can be joined the same way."""
    both = tokenizer("a", "b", add_special_tokens=True)["input_ids"]
    a = tokenizer("a", add_special_tokens=False)["input_ids"]
    b = tokenizer("b", add_special_tokens=False)["input_ids"]
    i = _find(both, a, 0)
    j = _find(both, b, i + len(a))
    return both[:i], both[i + len(a):j], both[j + len(b):]


@dataclass
class Segments:
    """Where a sentence pair's segment 1 starts: ``offset`` tokens into the first ``separator`` after the
    ``prefix_len`` leading special tokens (BERT: ``[CLS] a [SEP] b [SEP]`` -> prefix 1, separator [SEP], offset 1)."""

    prefix_len: int
    separator: list[int]
    offset: int


def _segments(tokenizer, layout) -> Segments | None:
    """Read from the tokenizer where a plain ``tokenizer(a, b)`` call switches the segment id from 0 to 1; None for
    tokenizers without segment ids."""
    if "token_type_ids" not in tokenizer.model_input_names:
        return None
    types = tokenizer("a", "b", add_special_tokens=True, return_token_type_ids=True)["token_type_ids"]
    switch = next((i for i, t in enumerate(types) if t != types[0]), None)
    if switch is None or types != [0] * switch + [1] * (len(types) - switch):
        return None
    prefix, middle, _ = layout
    offset = switch - len(prefix) - len(tokenizer("a", add_special_tokens=False)["input_ids"])
    return Segments(len(prefix), middle, offset) if 0 <= offset <= len(middle) else None


def attach_segment_ids(model, fmt: RMFormat) -> bool:
    """BERT-family models read a segment id per token (0 prompt, 1 response), which a plain ``tokenizer(prompt,
    response)`` call sends. realm joins fitted ids itself, so a forward pre-hook adds the same segment ids wherever
    a call gives none (training, evaluation, scoring, serving): realm's scores then equal a plain HF user's.
    Returns whether the model takes segment ids (recorded in ``realm_rm.json`` as ``segment_ids``)."""
    import torch

    seg = fmt.segments
    if seg is None or getattr(model.config, "type_vocab_size", 0) < 2:
        return False
    middle = torch.tensor(seg.separator, dtype=torch.long)

    def add_segment_ids(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None or kwargs.get("token_type_ids") is not None or ids.shape[1] < len(middle):
            return None
        hits = (ids.unfold(1, len(middle), 1) == middle.to(ids.device)).all(-1)
        hits[:, :seg.prefix_len] = False
        # The first separator after the prefix ends the prompt (as in tokenizer(a, b)); rows without one stay 0. A
        # prompt that itself contains the literal text "[SEP]" (tokenized as the special token) would end early.
        start = torch.where(hits.any(1), hits.long().argmax(1), ids.shape[1]) + seg.offset
        types = torch.arange(ids.shape[1], device=ids.device)[None, :] >= start[:, None]
        mask = kwargs.get("attention_mask")
        kwargs["token_type_ids"] = (types & mask.bool() if mask is not None else types).long()
        return args, kwargs

    model.register_forward_pre_hook(add_segment_ids, with_kwargs=True)
    return True


def _find(seq: list[int], sub: list[int], start: int) -> int:
    for i in range(start, len(seq) - len(sub) + 1):
        if seq[i:i + len(sub)] == sub:
            return i
    raise RealmError("cannot read this tokenizer's sentence-pair layout (it may not support text pairs)")


def ensure_pad_token(tokenizer, model=None, name: str = "model") -> None:
    """GPT-2-style tokenizers have no pad token: reuse EOS (the score head reads the last non-pad token, and we
    pad on the right, so EOS-as-pad never hides content). No pad and no EOS is an error."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise RealmError(f"model {name!r}: its tokenizer has neither a pad token nor an EOS token to pad with; "
                             f"add one to the tokenizer (tokenizer.add_special_tokens) before training")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    if model is not None:
        vocab = model.get_input_embeddings().num_embeddings
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id >= vocab:
            raise RealmError(f"model {name!r}: pad token {tokenizer.pad_token!r} (id {tokenizer.pad_token_id}) "
                             f"is outside the model's {vocab}-token vocabulary")
        model.config.pad_token_id = tokenizer.pad_token_id
        text_config = model.config.get_text_config()
        text_config.pad_token_id = tokenizer.pad_token_id


def model_max_length(model_config, tokenizer, wanted: int | None) -> int:
    """``wanted`` (or a default), capped by what the model's position embeddings allow."""
    limit = getattr(model_config.get_text_config(), "max_position_embeddings", None)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit is not None and tok_limit < 1_000_000:
        limit = min(limit, tok_limit) if limit else tok_limit
    if wanted is None:
        return min(limit, DEFAULT_MAX_LENGTH) if limit else DEFAULT_MAX_LENGTH
    if limit is not None and wanted > limit:
        raise RealmError(f"data.max_length={wanted} exceeds the model's limit of {limit} positions")
    return wanted


def load_tokenizer(path: str, name: str, trust_remote_code: bool = False, revision: str | None = None):
    from transformers import AutoTokenizer

    from realm_cli import models

    with models.loading(name):
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
        except (TypeError, KeyError) as exc:
            raise OSError(f"no usable tokenizer ({type(exc).__name__}: {exc})") from None
    # transformers 5 builds an empty tokenizer (a handful of special tokens) for a directory without tokenizer
    # files instead of failing; every text would then encode to [UNK].
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)) + 1:
        raise RealmError(f"model {name!r}: no tokenizer files at {path} (the tokenizer has {len(tokenizer)} tokens); "
                         f"save the tokenizer next to the weights")
    return tokenizer


@contextlib.contextmanager
def fresh_head_expected():
    """Load a base model as a sequence classifier without transformers' "newly initialized: score.weight" report
    (and TRL's twin warning): a fresh head is expected when training starts or a LoRA adapter brings the head."""
    from transformers.utils import logging as hf_logging
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with suppress_seqcls_warning():
            yield
    finally:
        hf_logging.set_verbosity(verbosity)


def head_modules(model) -> list[str]:
    """The top-level modules that are not the pretrained backbone: the score head (``score``, ``classifier``, a
    DeBERTa ``pooler``). LoRA must save them in full or a reloaded RM gets a fresh random head (trl#1379)."""
    prefix = getattr(model, "base_model_prefix", "")
    return [n for n, m in model.named_children() if n != prefix and any(True for _ in m.parameters())]


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def require_safetensors(path: str, name: str) -> None:
    """realm loads weights from safetensors only: a pickled checkpoint (``pytorch_model.bin``) runs arbitrary code
    when it is unpickled. A local folder with pickled weights and no safetensors is refused in one line, before
    transformers or peft would open it (hub ids are held to the same rule by ``use_safetensors=True``)."""
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
    if pickles:
        raise RealmError(f"model {name!r}: {folder / pickles[0]} is a pickle and there is no .safetensors file; "
                         f"realm loads safetensors only (unpickling runs code on load): convert it once, e.g. "
                         f"model = AutoModel.from_pretrained(dir); model.save_pretrained(dir)")


@dataclass
class LoadedRM:
    model: object
    tokenizer: object
    format: RMFormat
    info: RMInfo | None
    device: str


def load(name: str, *, device: str | None = None, max_length: int | None = None, trust_remote_code: bool = False,
         dtype: str = "auto") -> LoadedRM:
    """Load a reward-model directory (realm-trained full or LoRA, or any single-logit sequence classifier) or hub id
    for scoring. A LoRA directory is merged into its base for inference."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from realm_cli import models

    path = models.local_path(name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    info = RMInfo.read(Path(path)) if Path(path).is_dir() else None
    torch_dtype = models.torch_dtype(dtype)
    require_safetensors(path, name)
    with models.loading(name):
        adapter = Path(path) / "adapter_config.json"
        if adapter.is_file():
            from peft import PeftModel

            base = json.loads(adapter.read_text())["base_model_name_or_path"]
            require_safetensors(models.local_path(base), base)
            with fresh_head_expected():  # the adapter directory carries the trained head
                model = AutoModelForSequenceClassification.from_pretrained(
                    models.local_path(base), num_labels=1, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                    use_safetensors=True)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        else:
            model, report = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=torch_dtype, trust_remote_code=trust_remote_code, output_loading_info=True,
                use_safetensors=True)
    if not adapter.is_file():
        heads = tuple(f"{h}." for h in head_modules(model))
        fresh = [k for k in report.get("missing_keys", ()) if k.startswith(heads)]
        if fresh:  # scoring with a randomly initialised head would give confident-looking noise
            raise RealmError(f"model {name!r} has no trained reward head ({fresh[0]} is not in the checkpoint): "
                             f"it is a base model, not a reward model; train one with `realm train-rm`")
    if model.config.num_labels != 1:
        raise RealmError(f"model {name!r} has {model.config.num_labels} output labels; a reward model has one")
    tokenizer = load_tokenizer(path, name, trust_remote_code)
    ensure_pad_token(tokenizer, model, name)
    length = max_length or (info.max_length if info else None)
    fmt = RMFormat(tokenizer, model_max_length(model.config, tokenizer, length), info.format if info else None)
    if info is None or info.segment_ids:  # realm RMs trained before segment ids existed are scored as trained
        attach_segment_ids(model, fmt)
    model.to(device).eval()
    return LoadedRM(model, tokenizer, fmt, info, device)


def scoring_dtype(precision: str, device: str) -> str:
    """The dtype to load an RM in for scoring at ``precision``: bf16 weights on a CPU that scores in bf16. Under
    autocast over fp32 weights every norm, softmax and residual add runs in fp32 with casts around each matmul;
    the logits are bf16-rounded either way (the head's matmul is bf16 too). Measured with the demo's MiniLM RM on
    800 HH responses: 79 vs 63 responses/s, pairwise accuracy 0.682 vs 0.688 (AVX512-BF16, 2 threads)."""
    from realm_cli import models

    cpu = not device.startswith("cuda")
    bf16 = precision == "bf16" or (precision == "auto" and models.bf16_supported(device))
    return "bfloat16" if cpu and bf16 else "auto"


def pad_batch(seqs: Sequence[list[int]], pad_id: int):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def score_ids(model, seqs: Sequence[list[int]], pad_id: int, *, batch_size: int = 32, device: str = "cpu",
              precision: str = "auto", max_tokens: int | None = None) -> list[float]:
    """Scores of already-encoded sequences: sorted by length so each batch pads little, no grad, bf16 where fast.
    ``max_tokens`` caps batch rows x width so long inputs get smaller batches."""
    import torch

    from realm_cli import models

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]), reverse=True)
    out = [float("nan")] * len(seqs)
    was_training = model.training
    model.eval()
    i = 0
    with torch.no_grad(), models.autocast(device, precision):
        while i < len(order):
            width = len(seqs[order[i]])
            rows = batch_size if max_tokens is None else max(1, min(batch_size, max_tokens // max(width, 1)))
            idx = order[i: i + rows]
            ids, mask = pad_batch([seqs[j] for j in idx], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for j, v in zip(idx, logits.float().view(-1).tolist()):
                out[j] = v
            i += rows
    model.train(was_training)
    return out


def score(rm: LoadedRM, prompts: Sequence[list[Message]], responses: Sequence[str], *, batch_size: int = 32,
          precision: str = "auto") -> list[float]:
    seqs = [rm.format.encode(p, r)[0] for p, r in zip(prompts, responses)]
    return score_ids(rm.model, seqs, rm.tokenizer.pad_token_id, batch_size=batch_size, device=rm.device,
                     precision=precision, max_tokens=batch_size * 512)
