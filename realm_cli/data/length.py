"""Explicit length handling for preference pairs: truncate (reported) or drop (reported), never a silent drop.

TRL's RewardTrainer drops pairs longer than ``max_length`` without a word (trl#2488); realm fits them here instead.
Only the caller knows how a record becomes tokens (tokenizer + chat template), so it passes ``count_tokens``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from realm_cli.contracts import Message, PreferenceRecord

FitStatus = Literal["ok", "truncated", "dropped"]
CountTokens = Callable[[list["Message"], str], int]


def _longest_prefix(text: str, fits: Callable[[str], bool]) -> int:
    """The largest n with ``fits(text[:n])`` (token counts grow with text length, so bisection is enough)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(text[:mid]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _shortest_suffix_start(text: str, fits: Callable[[str], bool]) -> int:
    """The smallest k with ``fits(text[k:])``; ``len(text)`` when only the empty tail fits."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(text[mid:]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _drop_oldest_turn(prompt: list[Message]) -> list[Message] | None:
    """Without the oldest non-system turn (and any assistant turn left leading); None when one turn is left."""
    system = [m for m in prompt if m["role"] == "system"]
    turns = [m for m in prompt if m["role"] != "system"]
    if len(turns) <= 1:
        return None
    turns = turns[1:]
    while len(turns) > 1 and turns[0]["role"] == "assistant":  # chat templates expect a user turn first
        turns = turns[1:]
    return system + turns


def make_length_fitter(count_tokens: CountTokens, max_length: int,
                       overlong: Literal["truncate", "drop"] = "truncate"):
    """A ``fit(record) -> (record, status)`` for ``realm_cli.data.load.load``.

    ``count_tokens(prompt_messages, response)`` is the length of the formatted prompt + response. A pair fits when
    both prompt+chosen and prompt+rejected fit ``max_length``. Truncation keeps the responses whole where it can:
    it drops the oldest prompt turns first (keeping a system message and the final turn), then cuts the head of the
    final prompt turn down to half of ``max_length``, and only then cuts the response tails. A pair that still does
    not fit (the formatting alone is too long) is "dropped", as is every overlong pair under ``overlong="drop"``.
    """
    if max_length <= 0:
        raise ValueError("max_length must be positive")

    def fit(record: PreferenceRecord) -> tuple[PreferenceRecord, FitStatus]:
        seen: dict[tuple, int] = {}  # the loops below re-ask the same lengths; tokenizing is the cost

        def count(prompt, response: str) -> int:
            key = (tuple((m["role"], m["content"]) for m in prompt), response)
            if key not in seen:
                seen[key] = count_tokens(prompt, response)
            return seen[key]

        def longest(prompt, chosen: str, rejected: str) -> int:
            return max(count(prompt, chosen), count(prompt, rejected))

        prompt, chosen, rejected = list(record.prompt), record.chosen, record.rejected
        if longest(prompt, chosen, rejected) <= max_length:
            return record, "ok"
        if overlong == "drop":
            return record, "dropped"
        while longest(prompt, chosen, rejected) > max_length:
            shorter = _drop_oldest_turn(prompt)
            if shorter is None:
                break
            prompt = shorter
        if longest(prompt, chosen, rejected) > max_length and prompt:
            last = prompt[-1]

            def with_last(text: str):
                return prompt[:-1] + [{"role": last["role"], "content": text}]

            content = last["content"]
            # The smallest cut that fits the whole responses, but never below half the budget for the prompt.
            start = _shortest_suffix_start(content, lambda t: longest(with_last(t), chosen, rejected) <= max_length)
            floor = _shortest_suffix_start(content, lambda t: count(with_last(t), "") <= max_length // 2)
            prompt = with_last(content[min(start, floor):])
        if longest(prompt, chosen, rejected) > max_length:
            chosen = chosen[:_longest_prefix(chosen, lambda t: count(prompt, t) <= max_length)]
            rejected = rejected[:_longest_prefix(rejected, lambda t: count(prompt, t) <= max_length)]
        if longest(prompt, chosen, rejected) > max_length or not chosen.strip() or not rejected.strip():
            return record, "dropped"
        if chosen == rejected:  # cutting both tails made them equal: no preference is left to learn
            return record, "dropped"
        return replace(record, prompt=prompt, chosen=chosen, rejected=rejected), "truncated"

    fit.max_length, fit.overlong = max_length, overlong  # read back by the data report
    return fit


def chat_token_counter(tokenizer) -> CountTokens:
    """Count tokens the way a chat model sees a pair: the tokenizer's chat template when it has one, else the
    turns joined by blank lines (encoders such as BERT-style reward models)."""

    if getattr(tokenizer, "chat_template", None):
        def count(prompt, response: str) -> int:
            messages = list(prompt) + ([{"role": "assistant", "content": response}] if response else [])
            text = tokenizer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=not response)
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    else:
        def count(prompt, response: str) -> int:
            text = "\n\n".join([m["content"] for m in prompt] + ([response] if response else []))
            return len(tokenizer(text)["input_ids"])
    return count
