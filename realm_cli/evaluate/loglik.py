"""Summed log-likelihood of continuations after a context, computed the way lm-evaluation-harness does it.

Hand-written because the harness is not a dependency and its HF backend runs the whole context again for every
choice. Multiple-choice tasks share long prefixes (TruthfulQA: a six-shot primer, then the question, then ~12
short answers), so here the shared prefix is run once, its KV cache is kept, and each question's choices run as one
right-padded batch on a copy of the question's cache. The harness's tokenisation is kept exactly: context and
``context + continuation`` are tokenised separately (no special tokens) and the continuation is the tail of the
latter, so the model input is ``context_ids + continuation_ids`` — the same tokens the harness feeds.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """The harness's ``_encode_pair``: trailing context whitespace moves to the continuation."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    cont = whole[len(ctx):]
    if not ctx or not cont:
        raise ValueError(f"empty context or continuation after tokenisation: {context[-40:]!r} + {continuation!r}")
    return ctx, cont


def direct_loglikelihood(model, context_ids: Sequence[int], continuation_ids: Sequence[int]) -> float:
    """One unbatched, uncached forward over context + continuation: the reference the cached path must match."""
    import torch

    ids = torch.tensor([list(context_ids) + list(continuation_ids)], device=model.device)
    with torch.inference_mode():
        logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    start = len(context_ids) - 1  # the logits at position t predict token t + 1
    return float(sum(logp[start + i, tok] for i, tok in enumerate(continuation_ids)))


class ContinuationScorer:
    """Scores several continuations of one context per call, reusing the KV cache of a prefix shared by all calls."""

    def __init__(self, model, tokenizer, *, shared_prefix: str = "", batch_size: int = 32):
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        self.prefix_ids: list[int] = []
        self.prefix_cache = None
        self.prefix_hits = 0
        if shared_prefix:
            self.prefix_ids = tokenizer(shared_prefix, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                out = model(torch.tensor([self.prefix_ids], device=model.device), use_cache=True)
            self.prefix_cache = out.past_key_values

    def score(self, context: str, continuations: Sequence[str]) -> list[float]:
        import torch

        pairs = [encode_pair(self.tokenizer, context, c) for c in continuations]
        ctx_ids = pairs[0][0]
        if any(p[0] != ctx_ids for p in pairs):  # only when the context ends in whitespace that tokenises oddly
            return [direct_loglikelihood(self.model, c, k) for c, k in pairs]
        device = self.model.device
        n_prefix = len(self.prefix_ids)
        with torch.inference_mode():
            # Reuse the prefix cache only when the context's tokens really start with the prefix's tokens
            # (BPE merges across the boundary would make the cached states wrong).
            if self.prefix_cache is not None and len(ctx_ids) > n_prefix and ctx_ids[:n_prefix] == self.prefix_ids:
                self.prefix_hits += 1
                cache, rest = copy.deepcopy(self.prefix_cache), ctx_ids[n_prefix:]
            else:
                cache, rest = None, ctx_ids
            out = self.model(torch.tensor([rest], device=device), past_key_values=cache, use_cache=True)
            first_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            ctx_cache = out.past_key_values
            scores: list[float] = []
            for start in range(0, len(pairs), self.batch_size):
                conts = [k for _, k in pairs[start:start + self.batch_size]]
                scores.extend(self._score_batch(ctx_cache, len(ctx_ids), first_logp, conts))
        return scores

    def _score_batch(self, ctx_cache, ctx_len: int, first_logp, conts: list[list[int]]) -> list[float]:
        import torch

        width = max(len(k) for k in conts)
        ids = torch.zeros((len(conts), width), dtype=torch.long)
        mask = torch.zeros((len(conts), ctx_len + width), dtype=torch.long)
        mask[:, :ctx_len] = 1
        for i, k in enumerate(conts):
            ids[i, :len(k)] = torch.tensor(k)
            mask[i, ctx_len:ctx_len + len(k)] = 1  # right padding: padded positions come after every real token
        cache = copy.deepcopy(ctx_cache)
        cache.batch_repeat_interleave(len(conts))
        device = self.model.device
        logits = self.model(ids.to(device), attention_mask=mask.to(device), past_key_values=cache,
                            use_cache=True).logits
        out = []
        for i, k in enumerate(conts):
            total = float(first_logp[k[0]])
            if len(k) > 1:
                logp = torch.log_softmax(logits[i, : len(k) - 1].float(), dim=-1)
                total += float(logp.gather(1, torch.tensor(k[1:], device=device)[:, None]).sum())
            out.append(total)
        return out
