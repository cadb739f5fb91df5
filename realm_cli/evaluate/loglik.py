"""Summed log-likelihood of continuations after a context, computed the way lm-evaluation-harness 0.4.13 does it.

Hand-written because the harness is not a dependency and its HF backend runs the whole context again for every
choice. The harness's tokenisation is kept exactly (``HFLM.tok_encode`` / ``_encode_pair``): context and
``context + continuation`` are encoded separately and the continuation is the tail of the latter, so the model input
is ``context_ids + continuation_ids`` — the same tokens the harness feeds. BOS follows the harness's
``add_bos_token`` (harness PR #3347): ``"tokenizer"`` (its default, None) lets the tokenizer's own
``add_special_tokens`` default decide, ``True``/``False`` load the tokenizer with ``add_bos_token=`` and encode with
``add_special_tokens=`` that value; a string that already starts with the BOS text never gets a second one.

Two ways to run the model:

- cached (the default): multiple-choice tasks share long prefixes (TruthfulQA: a six-shot primer, then the
  question, then ~12 short answers), so the shared prefix is run once, its KV cache is kept, and several questions
  with their choices run packed into one row after it: each question's tokens, then its choices, position ids
  continuing from the prefix for the question and restarting at the question's end for every choice, and a block
  mask that lets a question see the prefix and itself, a choice the prefix, its question and its own earlier tokens.
  No pad token is computed (TruthfulQA v1 on SmolLM2: right-padded batches of choices computed 1.54x their tokens)
  and the prefix's cache is cropped back after each forward instead of copied. Attention implementations that take
  no custom mask (flash attention) run each question on a copy of the prefix's cache, then its choices as
  right-padded batches on copies of the question's. The per-token log-probabilities of a
  continuation are summed in one float32 reduction in token order, as the harness sums them (a bfloat16 model's
  logits are taken to float32 first; the harness would keep bfloat16). Only the forward's
  shapes differ from the harness, which moves float32 sums by a few 1e-5 (SmolLM2-135M: up to 4.6e-5 per choice,
  2.4e-6 in MC2 per question; the harness itself moves by 4e-5 between its batch sizes 1 and 8).
- exact: the harness's own layout at its default batch size 1 — one unpadded forward of
  ``(context + continuation)[:-1]`` per choice, no attention mask, ``log_softmax`` over the 3-D float32 logits,
  ``gather``, float32 ``sum`` — which gives bit-identical log-likelihoods on the same CPU kernels and thread count.
  It is several times slower.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

Bos = Literal["tokenizer"] | bool  # the harness's add_bos_token: None ("tokenizer"), True, False


def tokenizer_kwargs(bos: Bos) -> dict:
    """Extra ``from_pretrained`` arguments for a BOS mode: the harness passes ``add_bos_token`` when it is set, which
    rebuilds the post-processor so that BOS is really added (or not) whatever the saved tokenizer does."""
    return {} if bos == "tokenizer" else {"add_bos_token": bool(bos)}


def load_tokenizer(path: str, bos: Bos = "tokenizer", **kwargs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, **tokenizer_kwargs(bos), **kwargs)


def _bos_text(tokenizer) -> str | None:
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return None if prefix is None else tokenizer.decode(prefix)


def tok_encode(tokenizer, text: str, bos: Bos = "tokenizer", *, bos_text: str | None = None) -> list[int]:
    """The harness's ``HFLM.tok_encode(text)`` for ``add_bos_token`` = ``bos`` (see the module docstring)."""
    kwargs = {} if bos == "tokenizer" else {"add_special_tokens": bool(bos)}
    bos_text = _bos_text(tokenizer) if bos_text is None else bos_text
    if bos_text and text.startswith(bos_text):
        kwargs["add_special_tokens"] = False
    return tokenizer.encode(text, **kwargs)


def encode_pair(tokenizer, context: str, continuation: str, bos: Bos = "tokenizer", *,
                bos_text: str | None = None) -> tuple[list[int], list[int]]:
    """The harness's ``_encode_pair``: trailing context whitespace moves to the continuation, then the continuation
    is what ``context + continuation`` encodes to beyond the context's own encoding."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = tok_encode(tokenizer, context + continuation, bos, bos_text=bos_text)
    ctx = tok_encode(tokenizer, context, bos, bos_text=bos_text)
    cont = whole[len(ctx):]
    if not ctx or not cont:
        raise ValueError(f"empty context or continuation after tokenisation: {context[-40:]!r} + {continuation!r}")
    return ctx, cont


def bos_added(tokenizer, bos: Bos = "tokenizer") -> bool:
    """Whether encoding in this mode starts with the tokenizer's BOS token."""
    bos_id = tokenizer.bos_token_id
    return bos_id is not None and tok_encode(tokenizer, "Q:", bos)[:1] == [bos_id]


def direct_loglikelihood(model, context_ids: Sequence[int], continuation_ids: Sequence[int]) -> float:
    """The harness's HFLM ``_loglikelihood_tokens`` at batch size 1: one unpadded, uncached forward of
    ``(context + continuation)[:-1]``; the reference the cached path is checked against, and the exact mode."""
    import torch
    import torch.nn.functional as F

    ids = list(context_ids) + list(continuation_ids)
    inp = torch.tensor([ids[:-1]], dtype=torch.long, device=model.device)
    n = len(continuation_ids)
    with torch.no_grad():
        logp = F.log_softmax(model(inp).logits, dim=-1)  # [1, len, vocab], the model's dtype (float32 here)
        logp = logp[0, inp.shape[1] - n:inp.shape[1]].unsqueeze(0)
        cont = torch.tensor(list(continuation_ids), dtype=torch.long, device=model.device).unsqueeze(0)
        return float(torch.gather(logp, 2, cont.unsqueeze(-1)).squeeze(-1).sum())


def _crop(cache, length: int) -> None:
    """Cut a KV cache back to its first ``length`` positions (transformers' ``crop`` takes minus the number to drop)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


class ContinuationScorer:
    """Scores several continuations of one context per call, reusing the KV cache of a prefix shared by all calls
    (or, with ``exact=True``, running each one the harness's way)."""

    def __init__(self, model, tokenizer, *, shared_prefix: str = "", batch_size: int = 32, bos: Bos = "tokenizer",
                 exact: bool = False):
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        self.bos = bos
        self.exact = exact
        self.bos_text = _bos_text(tokenizer) or ""
        self.bos_added = bos_added(tokenizer, bos)
        if bos is True and not self.bos_added:
            raise ValueError("bos: true, but this tokenizer adds no BOS token"
                             + ("" if tokenizer.bos_token_id is not None else " (it has none)"))
        # packing needs a custom 4-D mask, which sdpa and eager attention take (transformers passes it through)
        self.packed = getattr(model.config, "_attn_implementation", None) in ("sdpa", "eager")
        self.prefix_ids: list[int] = []
        self.prefix_cache = None
        self.prefix_hits = 0
        if shared_prefix and not exact:
            self.prefix_ids = tok_encode(tokenizer, shared_prefix, bos, bos_text=self.bos_text)
            with torch.inference_mode():
                out = model(torch.tensor([self.prefix_ids], device=model.device), use_cache=True)
            self.prefix_cache = out.past_key_values

    def score(self, context: str, continuations: Sequence[str]) -> list[float]:
        return self.score_many([(context, continuations)])[0]

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]], max_tokens: int = 512) -> list[list[float]]:
        """Each (context, continuations) item's summed log-likelihoods. Packed, the contexts that start with the shared
        prefix's tokens run several to a forward (up to ``max_tokens`` new tokens: their own and their choices').
        TruthfulQA v1 on SmolLM2-135M fp32, 2 threads: 0.34 s per question right-padded, 0.195 packed one question
        per forward, 0.177 at 512 tokens, 0.188 at 1024 (longer rows attend over more masked-out positions)."""
        import torch

        out: list[list[float] | None] = [None] * len(items)
        group: list[tuple[int, list[int], list[list[int]]]] = []
        n_prefix = len(self.prefix_ids)
        with torch.inference_mode():
            for i, (context, continuations) in enumerate(items):
                pairs = [encode_pair(self.tokenizer, context, c, self.bos, bos_text=self.bos_text)
                         for c in continuations]
                ctx_ids = pairs[0][0]
                if self.exact or any(p[0] != ctx_ids for p in pairs):  # the latter: a context ending in odd whitespace
                    out[i] = [direct_loglikelihood(self.model, c, k) for c, k in pairs]
                    continue
                conts = [k for _, k in pairs]
                # Reuse the prefix cache only when the context's tokens really start with the prefix's tokens
                # (BPE merges across the boundary would make the cached states wrong).
                hit = (self.prefix_cache is not None and len(ctx_ids) > n_prefix
                       and ctx_ids[:n_prefix] == self.prefix_ids)
                if not hit:
                    out[i] = self._score_padded(ctx_ids, conts) if not self.packed else \
                        self._score_packed(None, 0, [(ctx_ids, conts)])[0]
                    continue
                self.prefix_hits += 1
                if not self.packed:
                    out[i] = self._score_padded(ctx_ids, conts, hit=True)
                    continue
                size = len(ctx_ids) - n_prefix + sum(map(len, conts))
                if group and sum(len(q) + sum(map(len, c)) for _, q, c in group) + size > max_tokens:
                    self._flush(group, out)
                group.append((i, ctx_ids[n_prefix:], conts))
            self._flush(group, out)
        return out

    def _flush(self, group: list, out: list) -> None:
        if group:
            for (i, _, _), scores in zip(group, self._score_packed(self.prefix_cache, len(self.prefix_ids),
                                                                   [(q, c) for _, q, c in group])):
                out[i] = scores
            group.clear()

    def _score_packed(self, cache, n_cached: int,
                      questions: list[tuple[list[int], list[list[int]]]]) -> list[list[float]]:
        """Several contexts and their continuations in one row after ``cache`` (``n_cached`` positions, None: 0): a
        context's tokens see the cache and their own context; a continuation sees the cache, its context and its
        own earlier tokens. Position ids restart at the cache's end for each context, so every token is computed as
        in its own unpadded sequence; nothing is padded. The cache is cropped back afterwards."""
        import torch

        device = self.model.device
        ids, pos, grp, seg = [], [], [], []
        last_ctx, starts = [], []  # per context: the row index of its last token; per continuation: its first
        for g, (ctx, conts) in enumerate(questions):
            ids += ctx
            pos += range(n_cached, n_cached + len(ctx))
            grp += [g] * len(ctx)
            seg += [-1] * len(ctx)
            last_ctx.append(len(ids) - 1)
            for k in conts:
                starts.append(len(ids))
                ids += k
                pos += range(n_cached + len(ctx), n_cached + len(ctx) + len(k))
                grp += [g] * len(k)
                seg += [len(starts)] * len(k)
        pos_t, grp_t, seg_t = torch.tensor(pos), torch.tensor(grp), torch.tensor(seg)
        own = (grp_t[:, None] == grp_t[None, :]) & (pos_t[None, :] <= pos_t[:, None]) & \
            ((seg_t[None, :] == -1) | (seg_t[None, :] == seg_t[:, None]))
        allowed = torch.cat([torch.ones(len(ids), n_cached, dtype=torch.bool), own], dim=1)[None, None].to(device)
        if self.model.config._attn_implementation != "sdpa":  # eager adds the mask to the scores
            dtype = self.model.dtype
            allowed = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(
                ~allowed, torch.finfo(dtype).min)
        try:
            logits = self.model(torch.tensor([ids], device=device), attention_mask=allowed,
                                position_ids=pos_t[None].to(device), past_key_values=cache,
                                use_cache=cache is not None).logits[0]
        finally:
            if cache is not None:
                _crop(cache, n_cached)  # the prefix's cache again, for the next forward
        rows, targets, lengths = [], [], []
        for g, (_, conts) in enumerate(questions):
            for k in conts:
                # the first token is predicted by the context's last position, the rest by the continuation's own
                rows += [last_ctx[g], *range(starts[len(lengths)], starts[len(lengths)] + len(k) - 1)]
                targets += k
                lengths.append(len(k))
        logp = torch.log_softmax(logits[torch.tensor(rows, device=device)].float(), dim=-1)
        per_token = logp.gather(1, torch.tensor(targets, device=device)[:, None])[:, 0]
        # one float32 reduction over each continuation's tokens in order, as the harness sums them
        sums = iter([float(x.sum()) for x in per_token.split(lengths)])
        return [[next(sums) for _ in conts] for _, conts in questions]

    def _score_padded(self, ctx_ids: list[int], conts: list[list[int]], hit: bool = False) -> list[float]:
        """The context on (a copy of) the prefix's cache, then its continuations as right-padded batches on copies
        of the context's cache — for attention implementations that take no custom mask."""
        import torch

        n_prefix = len(self.prefix_ids) if hit else 0
        cache = copy.deepcopy(self.prefix_cache) if hit else None
        out = self.model(torch.tensor([ctx_ids[n_prefix:]], device=self.model.device), past_key_values=cache,
                         use_cache=True)
        first_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        scores: list[float] = []
        for start in range(0, len(conts), self.batch_size):
            scores.extend(self._score_batch(out.past_key_values, len(ctx_ids), first_logp,
                                            conts[start:start + self.batch_size]))
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
        logp = torch.log_softmax(self.model(ids.to(device), attention_mask=mask.to(device), past_key_values=cache,
                                            use_cache=True).logits.float(), dim=-1)
        out = []
        for i, k in enumerate(conts):
            toks = torch.tensor(k, device=device)
            # the first token is predicted by the context's last position, the rest by the continuation's own
            per_token = torch.cat([first_logp[toks[:1]], logp[i, :len(k) - 1].gather(1, toks[1:, None])[:, 0]])
            out.append(float(per_token.sum()))  # one float32 reduction over the tokens in order, as the harness sums
        return out
