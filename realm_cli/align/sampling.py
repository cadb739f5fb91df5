"""Batched sampling from a chat policy with the KV cache: k responses per prompt, token ids kept for PPO."""

from __future__ import annotations

from dataclasses import dataclass, field

from realm_cli.contracts import Message


@dataclass
class Sampling:
    """Sampling settings shared by every align trainer (a recipe's ``trainer:`` block sets them)."""

    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 64
    max_prompt_tokens: int = 256
    batch_size: int = 16  # sequences per generate() call


@dataclass
class Samples:
    prompt_index: list[int] = field(default_factory=list)  # which input prompt each sample answers
    query_ids: list[list[int]] = field(default_factory=list)  # the templated prompt tokens (no padding)
    response_ids: list[list[int]] = field(default_factory=list)  # generated tokens up to and including EOS
    texts: list[str] = field(default_factory=list)  # decoded responses, special tokens dropped


def chat_prompt(tokenizer, messages: list[Message]) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def sample(model, tokenizer, prompts: list[list[Message]], *, k: int = 1, settings: Sampling | None = None,
           greedy: bool = False, seed: int | None = None, autocast=None, share: tuple[int, int] = (0, 1)) -> Samples:
    """``k`` responses to each prompt, generated ``settings.batch_size`` sequences at a time with ``use_cache``.

    ``share=(rank, size)``: only every ``size``-th of the ``len(prompts) * k`` samples from ``rank`` on (one
    process's part of a multi-process run; ``shards.gather`` puts the parts back in order)."""
    import contextlib

    import torch

    settings = settings or Sampling()
    if seed is not None:
        torch.manual_seed(seed)
    eos_ids = _eos_ids(model, tokenizer)
    texts = [chat_prompt(tokenizer, p) for p in prompts]
    jobs = [(i, texts[i]) for i in range(len(prompts)) for _ in range(k)][share[0]::share[1]]
    out = Samples()
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    try:
        for start in range(0, len(jobs), settings.batch_size):
            chunk = jobs[start:start + settings.batch_size]
            enc = tokenizer([t for _, t in chunk], return_tensors="pt", padding=True, truncation=True,
                            max_length=settings.max_prompt_tokens, add_special_tokens=False).to(dev)
            kwargs = dict(max_new_tokens=settings.max_new_tokens, use_cache=True,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids)
            if greedy:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0)
            with torch.no_grad(), (autocast or contextlib.nullcontext()):
                generated = model.generate(**enc, **kwargs)
            width = enc["input_ids"].shape[1]
            for row, (index, _) in enumerate(chunk):
                query = enc["input_ids"][row][enc["attention_mask"][row].bool()].tolist()
                response = _cut_at_eos(generated[row, width:].tolist(), eos_ids, tokenizer.pad_token_id)
                out.prompt_index.append(index)
                out.query_ids.append(query)
                out.response_ids.append(response)
                out.texts.append(tokenizer.decode(response, skip_special_tokens=True).strip())
    finally:
        model.train(was_training)
    return out


def _eos_ids(model, tokenizer) -> list[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _cut_at_eos(tokens: list[int], eos_ids: list[int], pad_id: int | None) -> list[int]:
    """Keep tokens up to and including the first EOS; what generate() pads after it is not part of the response."""
    for i, tok in enumerate(tokens):
        if tok in eos_ids:
            return tokens[: i + 1]
    if pad_id is not None and pad_id not in eos_ids:
        while tokens and tokens[-1] == pad_id:
            tokens = tokens[:-1]
    return tokens


def token_logprobs(model, query_ids: list[list[int]], response_ids: list[list[int]], pad_id: int, *,
                   batch_size: int = 16, autocast=None, with_hidden: bool = False):
    """Per-token log-probabilities of each response given its query (right-padded, a list of 1-D tensors).

    With ``with_hidden`` also returns the last hidden state at each response position (the PPO value head reads it).
    Gradients flow when called outside ``torch.no_grad()``.
    """
    import contextlib

    import torch

    dev = next(model.parameters()).device
    logps, hiddens = [], []
    for start in range(0, len(response_ids), batch_size):
        q = query_ids[start:start + batch_size]
        r = response_ids[start:start + batch_size]
        seqs = [a + b for a, b in zip(q, r)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        first = min(len(a) for a in q) - 1  # no logits are needed before the earliest response position
        with autocast or contextlib.nullcontext():
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=with_hidden, use_cache=False,
                        logits_to_keep=width - first)
        # One log_softmax + gather over the batch from the first response position on (slicing each sample's
        # span out of the full logits instead would make backward materialise a batch-sized gradient per sample).
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        logp = logp.gather(-1, ids[:, first + 1:, None]).squeeze(-1)
        for i, (a, b) in enumerate(zip(q, r)):
            # the logits at position t predict token t+1: the response starts at len(a)
            logps.append(logp[i, len(a) - 1 - first: len(a) + len(b) - 1 - first])
            if with_hidden:
                hiddens.append(out.hidden_states[-1][i, len(a) - 1: len(a) + len(b) - 1].float())
    return (logps, hiddens) if with_hidden else logps
