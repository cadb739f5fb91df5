"""The one input-fitting policy: how an over-long (prompt, response) becomes at most ``max_length`` token ids, for
training (``train-rm``), scoring (the ``bt`` reward, ``realm score``/``serve``/``eval``) and ``realm data inspect``
alike, so a pair is cut the same way when it is trained on and when it is scored.

The cut order, applied to one (prompt, response) at a time:
1. the oldest prompt turns, keeping every system message and the final turn (a user turn stays first);
2. the head of the final prompt turn, as far as the whole response needs but never below half the room the
   template and the other messages leave it (half the budget when they are short);
3. the tail of the response;
4. (scoring only, reached when a system message or the template alone leaves the response no room) the system
   messages, then steps 2-3 again, then the head of the token ids. Training drops such a pair instead and counts it.

Why this order: the response is what a reward model judges, so it is kept whole as long as the prompt can give way;
the newest prompt turn is the question it answers, so old turns go first; and half the budget stays with the
prompt, because a response judged without its question is noise. Training and scoring share it because scoring
sees one response at a time: the cut depends only on (prompt, response), so the two sides of a training pair are
fitted independently, exactly as each would be scored. TRL's RewardTrainer drops over-long pairs without a word
(trl#2488); realm fits them, and a pair that cannot fit is dropped and counted, never silently.

How a (prompt, response) becomes ids is the caller's (``realm_cli.rewards.rm.RMFormat``): it passes ``render``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from realm_cli.contracts import Message, PreferenceRecord

FitStatus = Literal["ok", "truncated", "dropped"]
Render = Callable[[list["Message"], str], list[int]]  # (prompt messages, response) -> ids of the whole input


@dataclass(frozen=True)
class Cut:
    """What fitting removed: whole prompt messages, tokens from the head of the final prompt turn and from the
    response tail, and tokens cut beyond the policy (the scoring-only last resort, step 4)."""

    turns: int = 0
    prompt_tokens: int = 0
    response_tokens: int = 0
    forced: int = 0

    def __bool__(self) -> bool:
        return any((self.turns, self.prompt_tokens, self.response_tokens, self.forced))


@dataclass(frozen=True)
class Fitted:
    """Token ids of one fitted input, the prompt and response text they render, and what was cut. ``fits`` is false
    when only the last resort fitted it: ``ids`` are still usable for scoring, training drops the pair."""

    ids: list[int]
    prompt: list[Message]
    response: str
    cut: Cut
    fits: bool = True

    @property
    def truncated(self) -> bool:
        return bool(self.cut)


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


def fit_input(render: Render, prompt: Sequence[Message], response: str, max_length: int, *,
              tokens: Callable[[str], int] | None = None) -> Fitted:
    """``prompt`` + ``response`` fitted to ``max_length`` ids by the module's cut order. ``tokens(text)`` counts a
    text's tokens for the ``Cut`` report (characters when not given)."""
    if max_length <= 0:
        raise ValueError("max_length must be positive")
    tokens = tokens or len
    seen: dict[tuple, list[int]] = {}  # the bisections re-ask the same inputs; tokenizing is the cost

    def ids(p: list[Message], r: str) -> list[int]:
        key = (tuple((m["role"], m["content"]) for m in p), r)
        if key not in seen:
            seen[key] = render(p, r)
        return seen[key]

    def fits(p: list[Message], r: str) -> bool:
        return len(ids(p, r)) <= max_length

    prompt = list(prompt)
    if fits(prompt, response):
        return Fitted(ids(prompt, response), prompt, response, Cut())
    original = len(prompt)
    while not fits(prompt, response):  # 1. the oldest turns
        shorter = _drop_oldest_turn(prompt)
        if shorter is None:
            break
        prompt = shorter
    turns = original - len(prompt)

    def head_and_tail(prompt: list[Message]) -> tuple[list[Message], str, int]:
        head = 0
        if not fits(prompt, response) and prompt:  # 2. the head of the final turn, down to half its room
            last = prompt[-1]

            def with_last(text: str) -> list[Message]:
                return prompt[:-1] + [{"role": last["role"], "content": text}]

            content = last["content"]
            start = _shortest_suffix_start(content, lambda t: fits(with_last(t), response))
            # The final turn keeps at least half the room the template and the other messages leave it.
            fixed = len(ids(with_last(""), ""))
            floor = _shortest_suffix_start(
                content, lambda t: len(ids(with_last(t), "")) - fixed <= (max_length - fixed) // 2)
            start = min(start, floor)
            head = tokens(content) - tokens(content[start:]) if start else 0
            prompt = with_last(content[start:])
        kept = response
        if not fits(prompt, kept):  # 3. the response tail
            kept = response[:_longest_prefix(response, lambda t: fits(prompt, t))]
        return prompt, kept, head

    def cut(turns: int, head: int, kept: str, forced: int = 0) -> Cut:
        return Cut(turns, head, tokens(response) - tokens(kept) if kept != response else 0, forced)

    fitted, kept, head = head_and_tail(prompt)
    if fits(fitted, kept) and kept.strip():
        return Fitted(ids(fitted, kept), fitted, kept, cut(turns, head, kept))
    # 4. Last resort (scoring; training drops the pair): the system messages go too, then the head of the ids.
    system = sum(m["role"] == "system" for m in prompt)
    if system and len(prompt) > system:
        fitted, kept, head = head_and_tail([m for m in prompt if m["role"] != "system"])
        turns += system
    prompt, out = fitted, ids(fitted, kept)
    return Fitted(out[-max_length:], prompt, kept, cut(turns, head, kept, max(0, len(out) - max_length)), fits=False)


class PairFitter:
    """``fit(record) -> (record, status)`` for ``realm_cli.data.load.load``: each side fitted by ``fmt.fit`` (an
    ``RMFormat``: ``fit``, ``count``, ``max_length``), the record returned as read. A pair is "truncated" when
    either side was cut; "dropped" under ``overlong="drop"`` when either side is over ``max_length``, or under
    "truncate" when a side fits only by the last resort or cutting made both sides the same ids (no preference is
    left to learn). ``sides(record)`` gives the two ``Fitted`` the trainer encodes (those cut here are handed over,
    not fitted twice)."""

    def __init__(self, fmt, overlong: Literal["truncate", "drop"] = "truncate"):
        if overlong not in ("truncate", "drop"):
            raise ValueError(f"overlong: expected truncate or drop, got {overlong!r}")
        self.fmt, self.max_length, self.overlong = fmt, fmt.max_length, overlong  # the last two: the data report's
        self._cut: dict[tuple, Fitted] = {}

    @staticmethod
    def _key(prompt, response: str) -> tuple:
        return tuple((m["role"], m["content"]) for m in prompt), response

    def _fit(self, prompt, response: str, keep: bool) -> Fitted:
        key = self._key(prompt, response)
        fitted = self._cut.pop(key, None) if not keep else self._cut.get(key)
        if fitted is None:
            fitted = self.fmt.fit(prompt, response)
            if keep and fitted.truncated:
                self._cut[key] = fitted
        return fitted

    def sides(self, record: PreferenceRecord) -> tuple[Fitted, Fitted]:
        return self._fit(record.prompt, record.chosen, False), self._fit(record.prompt, record.rejected, False)

    def __call__(self, record: PreferenceRecord) -> tuple[PreferenceRecord, FitStatus]:
        if self.overlong == "drop":  # nothing is cut: measuring is enough
            longest = max(self.fmt.count(record.prompt, record.chosen), self.fmt.count(record.prompt, record.rejected))
            return record, "ok" if longest <= self.max_length else "dropped"
        chosen = self._fit(record.prompt, record.chosen, True)
        rejected = self._fit(record.prompt, record.rejected, True)
        if not (chosen.truncated or rejected.truncated):
            return record, "ok"
        if not (chosen.fits and rejected.fits) or chosen.ids == rejected.ids:
            self.sides(record)  # nothing will encode a dropped pair: let go of its fitted sides
            return record, "dropped"
        return record, "truncated"
