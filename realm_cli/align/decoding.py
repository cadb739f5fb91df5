"""What the sampler's decode loop (``sampling.decode_batch``) caches in and draws with: a KV cache layer that grows
in place, and nucleus sampling that sorts only the most probable tokens. Both replace a library piece that costs a
decode step more than it needs to on a CPU; each says why and what it measured."""

from __future__ import annotations

import functools


@functools.cache
def growing_layer():
    """``GrowingLayer``: transformers' ``DynamicLayer`` with the keys and values kept in a buffer with spare room.

    Hand-written because ``DynamicLayer.update`` concatenates the whole cache with each new token (a copy of every
    layer's keys and values per decode step); here a step writes its one position into the buffer, which grows by
    ``SPARE`` positions when full, and attention reads a view of the filled part. Dropping rows indexes the buffer.
    Measured on SmolLM2-135M, 64 greedy HH responses in batches of 16: 110 -> 123 tokens/s, the same tokens."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        SPARE = 64

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.filled, self.buffers = 0, None
            end = self.filled + key_states.shape[-2]
            if self.buffers is None or end > self.buffers[0].shape[-2]:
                shape = (*key_states.shape[:2], end + self.SPARE, key_states.shape[-1])
                grown = (key_states.new_empty(shape), value_states.new_empty(shape))
                if self.buffers is not None:
                    for new, old in zip(grown, self.buffers):
                        new[:, :, :self.filled] = old[:, :, :self.filled]
                self.buffers = grown
            self.buffers[0][:, :, self.filled:end] = key_states
            self.buffers[1][:, :, self.filled:end] = value_states
            self.filled = end
            self.keys, self.values = (b[:, :, :end] for b in self.buffers)
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            if self.is_initialized:
                self.buffers = tuple(b[indices] for b in self.buffers)
                self.keys, self.values = (b[:, :, :self.filled] for b in self.buffers)

    return GrowingLayer  # a class built on first use: transformers is imported lazily


def nucleus_settings(processors) -> tuple[float, float, int] | None:
    """(temperature, top_p, min_tokens_to_keep) when ``processors`` are only a temperature and a top-p warper (in
    the order ``generate()`` builds them), else None."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    kinds = [type(p) for p in processors]
    if kinds not in ([TemperatureLogitsWarper, TopPLogitsWarper], [TopPLogitsWarper], [TemperatureLogitsWarper]):
        return None
    temperature = next((p.temperature for p in processors if type(p) is TemperatureLogitsWarper), 1.0)
    top = next((p for p in processors if type(p) is TopPLogitsWarper), None)
    return float(temperature), (top.top_p if top else 1.0), (top.min_tokens_to_keep if top else 1)


def nucleus_candidates(logits, temperature: float, top_p: float, min_keep: int = 1, first: int = 64):
    """(token ids, probabilities), both (rows, k): the tokens ``TemperatureLogitsWarper`` + ``TopPLogitsWarper``
    keep for each row, most probable first, with their renormalised probabilities (0 past a row's last kept token).

    Hand-written because the warper sorts the whole vocabulary (and sampling then draws over it) at every step:
    ~40 ms of a ~200 ms decode step for 16 rows of SmolLM2's 49k tokens. The kept set is the warper's: a token is
    kept when the probability of the tokens above it is under ``top_p`` (its "cumulative probability above 1 -
    top_p", counted from the other end), and at least ``min_keep`` are. Only the ``first`` most probable tokens are
    sorted, more (doubling) while some row's kept set could reach past them."""
    import torch

    probs = torch.softmax(logits / temperature, dim=-1)
    k = min(max(first, min_keep), probs.shape[-1])
    while True:
        top, ids = probs.topk(k, dim=-1)
        above = top.cumsum(-1) - top  # the probability of the tokens before each in this order
        keep = above < top_p
        keep[:, :min_keep] = True
        if k == probs.shape[-1] or not bool(keep[:, -1].any()):
            break
        k = min(2 * k, probs.shape[-1])
    top = top * keep
    return ids, top / top.sum(-1, keepdim=True)


def nucleus_sample(logits, temperature: float, top_p: float, min_keep: int = 1):
    """One token per row from ``nucleus_candidates``'s distribution: the one ``generate()`` samples from."""
    import torch

    if top_p >= 1.0:  # temperature alone: nothing to cut
        return torch.multinomial(torch.softmax(logits / temperature, dim=-1), num_samples=1).squeeze(1)
    ids, probs = nucleus_candidates(logits, temperature, top_p, min_keep)
    return ids.gather(-1, torch.multinomial(probs, num_samples=1)).squeeze(1)
