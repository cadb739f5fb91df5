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
    # sequences per batch (benchmarks/sampling.py, 32 HH prompts x 2, AVX512-BF16 EPYC, 2 threads: 16 -> 123, 32 ->
    # 145, 64 -> 131 tokens/s). 16-row matmuls run at a third of the 64-row rate there, but a larger batch spans more
    # prompt lengths, so its rows carry more left padding through every step.
    batch_size: int = 32


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
    """``k`` responses to each prompt, ``settings.batch_size`` sequences at a time with the KV cache.

    ``share=(rank, size)``: only every ``size``-th of the ``len(prompts) * k`` samples from ``rank`` on (one
    process's part of a multi-process run; ``shards.gather`` puts the parts back in order).

    Two things make it faster than ``generate()`` over the jobs in order (benchmarks/sampling.py measures them):
    batches are formed from jobs of neighbouring prompt length, so little of each batch is left padding, and
    ``decode_batch`` drops a row from the batch as soon as it ends instead of computing it until the batch's longest
    response does. The outputs still come in job order.

    Under ZeRO-3 the callers run this inside ``shards.full_weights``: every rank holds the full weights and a forward
    pass has no collective in it, so ranks may run different numbers of passes (as with ``generate()``, which also
    stops when its own batch is done, and with shares of different sizes)."""
    import contextlib

    import torch

    settings = settings or Sampling()
    if seed is not None:
        torch.manual_seed(seed)
    templated = templated_ids(tokenizer, prompts, settings)
    jobs = [i for i in range(len(prompts)) for _ in range(k)][share[0]::share[1]]
    by_length = sorted(range(len(jobs)), key=lambda j: len(templated[jobs[j]]))  # stable: a prompt's k stay together
    options = generate_options(tokenizer, _eos_ids(model, tokenizer), settings, greedy)
    decode = decode_batch if can_drop_rows(model) else generate_batch
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), (autocast or contextlib.nullcontext()):
            runner = bf16_matmul_copy(model) if _wants_bf16_copy(model) else model
            responses = in_batches(runner, [templated[i] for i in jobs], by_length, settings.batch_size, decode,
                                   options)
    finally:
        model.train(was_training)
    return Samples(prompt_index=jobs, query_ids=[list(templated[i]) for i in jobs], response_ids=responses,
                   texts=[tokenizer.decode(r, skip_special_tokens=True).strip() for r in responses])


def _wants_bf16_copy(model) -> bool:
    """Inside bf16 autocast on a CPU, for a model with fp32 matmul weights that ZeRO-3 does not partition (a
    deep copy of DeepSpeed's gathered parameters would carry its hooks)."""
    import torch

    if not (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16):
        return False
    params = list(model.parameters())
    return (params[0].device.type == "cpu" and not any(hasattr(p, "ds_id") for p in params)
            and any(isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float32 for m in model.modules()))


def bf16_matmul_copy(model):
    """A copy of ``model`` to sample from, its linear layers' weights (a LoRA adapter merged in first) in bf16.

    Written by hand because CPU autocast casts each fp32 weight to bf16 at every matmul of every decode step: its
    cast cache keeps only weights that require grad, so a LoRA policy's frozen base (and the adapter branch's two
    small matmuls per layer) are cast again for every token. The copy's matmuls take their weights as they are;
    embeddings, norms and the residual stream stay fp32 as under autocast (a tied output head is untied for it), so
    for a full model the tokens are the ones autocast over the fp32 weights gives. Measured on SmolLM2-135M,
    benchmarks/sampling.py --levers. Costs one copy of the weights per ``sample`` call (~0.3 s at 135M)."""
    import copy

    import torch

    clone = copy.deepcopy(model)
    if hasattr(clone, "merge_and_unload"):  # a peft model: one matmul per layer, no adapter branch
        clone = clone.merge_and_unload()
    for module in clone.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.float32:
            module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16), requires_grad=False)
            if module.bias is not None:
                module.bias = torch.nn.Parameter(module.bias.detach().to(torch.bfloat16), requires_grad=False)
    return clone.eval()


def templated_ids(tokenizer, prompts: list[list[Message]], settings: Sampling) -> list[list[int]]:
    """Each prompt's chat-templated tokens, the oldest cut when over ``settings.max_prompt_tokens``."""
    return tokenizer([chat_prompt(tokenizer, p) for p in prompts], truncation=True,
                     max_length=settings.max_prompt_tokens, add_special_tokens=False)["input_ids"]


def generate_options(tokenizer, eos_ids: list[int], settings: Sampling, greedy: bool) -> dict:
    """``generate()`` keyword arguments for these settings (``decode_batch`` takes the same)."""
    options = dict(max_new_tokens=settings.max_new_tokens, use_cache=True, pad_token_id=tokenizer.pad_token_id,
                   eos_token_id=eos_ids)
    if greedy:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        options.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0)
    return options


def in_batches(model, queries: list[list[int]], order: list[int], batch_size: int, decode, options: dict):
    """``decode(model, queries, options)`` over batches of ``batch_size`` queries taken in ``order``; the responses
    in the queries' own order."""
    responses: list[list[int]] = [[] for _ in queries]
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        for j, response in zip(batch, decode(model, [queries[j] for j in batch], options)):
            responses[j] = response
    return responses


def _left_padded(queries: list[list[int]], pad_id: int, device):
    """(input_ids, attention_mask) with each query right-aligned: decoder-only generation continues from the right."""
    import torch

    width = max(map(len, queries))
    ids = torch.tensor([[pad_id] * (width - len(q)) + q for q in queries], device=device)
    mask = torch.tensor([[0] * (width - len(q)) + [1] * len(q) for q in queries], device=device)
    return ids, mask


def generate_batch(model, queries: list[list[int]], options: dict) -> list[list[int]]:
    """Plain ``generate()``: for a model whose KV cache ``decode_batch`` cannot drop rows from."""
    ids, mask = _left_padded(queries, options["pad_token_id"], next(model.parameters()).device)
    generated = model.generate(input_ids=ids, attention_mask=mask, **options)
    return [_cut_at_eos(row, options["eos_token_id"], options["pad_token_id"])
            for row in generated[:, ids.shape[1]:].tolist()]


def can_drop_rows(model) -> bool:
    """Whether ``decode_batch`` applies: a decoder-only model of transformers' own code whose default cache is a plain
    ``DynamicCache`` of attention layers (``batch_select_indices`` drops rows from those)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a peft wrapper
    if model.config.is_encoder_decoder or base.is_remote_code() or not base._supports_default_dynamic_cache():
        return False
    return all(isinstance(layer, DynamicLayer) for layer in DynamicCache(config=model.config).layers)


def decode_batch(model, queries: list[list[int]], options: dict) -> list[list[int]]:
    """What ``generate(**options)`` samples for the batch, each response up to and including its first EOS.

    Hand-written only because ``generate()`` cannot shrink its batch: it keeps computing the rows that have ended
    (padding them) until the longest one ends. Here a row leaves the batch, its KV cache rows included, at its EOS,
    and the copies of one prompt in the batch (its ``k`` samples) share one prefill.
    The logits processors are the ones ``generate()`` builds from the same options (temperature, top-p, and
    whatever the model's generation config adds), fed the same running ids; greedy is the argmax. When they are
    only temperature and top-p (realm's settings on a model whose generation config adds nothing), ``nucleus_sample``
    draws from the same distribution without sorting the vocabulary. The KV cache grows in place (``growing_layer``)."""
    import torch
    from transformers import DynamicCache

    from realm_cli.align.decoding import growing_layer, nucleus_sample, nucleus_settings

    dev = next(model.parameters()).device
    distinct: dict[tuple[int, ...], int] = {}
    copies = torch.tensor([distinct.setdefault(tuple(q), len(distinct)) for q in queries], device=dev)
    ids, mask = _left_padded([list(q) for q in distinct], options["pad_token_id"], dev)
    config, _ = model._prepare_generation_config(None, **options)
    model._prepare_special_tokens(config, True, device=dev)
    processors = model._get_logits_processor(config, input_ids_seq_length=ids.shape[1], encoder_input_ids=ids,
                                             device=dev, model_kwargs={})
    eos = torch.tensor(options["eos_token_id"], device=dev)
    width = ids.shape[1]
    rows = torch.arange(len(queries), device=dev)  # the query each row of the shrinking batch answers
    responses: list[list[int]] = [[] for _ in queries]

    def retire(which):
        for row, tokens in zip(rows[which].tolist(), ids[which, width:].tolist()):
            responses[row] = tokens

    cache = DynamicCache(config=model.config)
    cache.layers = [growing_layer()() for _ in cache.layers]  # can_drop_rows: they were all DynamicLayer
    nucleus = nucleus_settings(processors) if config.do_sample else None
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1]
    # the k samples of a prompt share one prefill: its cache rows (and next-token logits) copied for each
    cache.batch_select_indices(copies)
    ids, mask, positions, logits = ids[copies], mask[copies], positions[copies], logits[copies]
    for step in range(config.max_new_tokens):
        if nucleus is not None:
            chosen = nucleus_sample(logits.float(), *nucleus)
        elif config.do_sample:
            chosen = torch.multinomial(torch.softmax(processors(ids, logits.float()), dim=-1), num_samples=1).squeeze(1)
        else:
            chosen = processors(ids, logits.float()).argmax(dim=-1)
        ids = torch.cat([ids, chosen[:, None]], dim=-1)
        ended = torch.isin(chosen, eos)
        if step + 1 == config.max_new_tokens or bool(ended.all()):
            break
        if bool(ended.any()):
            retire(ended)
            live = (~ended).nonzero().squeeze(1)
            cache.batch_select_indices(live)
            ids, mask, positions, rows, chosen = ids[live], mask[live], positions[live], rows[live], chosen[live]
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)
        positions = positions[:, -1:] + 1
        logits = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True).logits[:, -1]
    retire(torch.ones(len(rows), dtype=torch.bool, device=dev))
    return responses


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
