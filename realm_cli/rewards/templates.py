"""Chat-templated text back into messages: what RL stacks send a remote reward model.

OpenRLHF's trainer posts each sample as the policy's chat-templated text, special tokens included
(``openrlhf/utils/remote_rm_utils.py``); vLLM's ``/pooling`` and ``/classify`` take plain text too. A reward scores
``(prompt messages, response)`` with its own format, so the text is parsed back with the policy's template: named
(``chatml``, ``llama3``, ``gemma``, ``hh``) or detected from the markers each well-known template writes. No
tokenizer is needed: the markers are text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from realm_cli.contracts import Message
from realm_cli.errors import RealmError, excerpt


@dataclass(frozen=True)
class Template:
    name: str
    turn: re.Pattern  # one complete turn: groups (role, content)
    open_turn: re.Pattern  # the last, possibly unfinished turn: groups (role, content)
    marker: str  # text only this template writes (for detection)
    strip: tuple[str, ...] = ()  # tokens around the whole conversation: BOS/EOS, left padding, a final end of turn
    roles: tuple[tuple[str, str], ...] = ()  # template role -> realm role

    def role(self, name: str) -> str:
        return dict(self.roles).get(name, name)


TEMPLATES = {
    "chatml": Template(
        "chatml", re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>\n?", re.S),
        re.compile(r"<\|im_start\|>(\w+)\n(.*)$", re.S), "<|im_start|>", ("<|endoftext|>", "<|im_end|>")),
    "llama3": Template(
        "llama3", re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.S),
        re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*)$", re.S), "<|start_header_id|>",
        ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>")),
    "gemma": Template(
        "gemma", re.compile(r"<start_of_turn>(\w+)\n(.*?)<end_of_turn>\n?", re.S),
        re.compile(r"<start_of_turn>(\w+)\n(.*)$", re.S), "<start_of_turn>", ("<bos>", "<eos>", "<pad>", "<end_of_turn>"),
        (("model", "assistant"),)),
}
HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def detect(text: str) -> str:
    """The template that wrote ``text``: the first whose marker it contains, else the HH transcript, else plain."""
    for name, template in TEMPLATES.items():
        if template.marker in text:
            return name
    return "hh" if HH_TURN.search("\n\n" + text.lstrip("\n")) and "Assistant:" in text else "plain"


def _strip(text: str, template: Template) -> str:
    changed = True
    while changed:
        changed = False
        for token in template.strip:
            if text.startswith(token):
                text, changed = text[len(token):], True
            if text.endswith(token):
                text, changed = text[: -len(token)], True
    return text


def parse(text: str, template: str | None = None) -> list[Message]:
    """Every turn of a templated conversation, in order; the last turn may be unfinished (a generation prompt gives an
    empty assistant turn, a policy's sample may lack its end-of-turn token). Plain text is one user turn."""
    name = template or detect(text)
    if name == "plain":
        return [{"role": "user", "content": text}]
    if name == "hh":
        parts = HH_TURN.split("\n\n" + text.lstrip("\n"))
        turns = [{"role": HH_ROLES[role], "content": content.strip()} for role, content in zip(parts[1::2], parts[2::2])]
        if parts[0].strip() or not turns:
            raise RealmError(f"not an HH transcript (\\n\\nHuman: ... \\n\\nAssistant: ...): {excerpt(text, 80)!r}")
        return turns
    if name not in TEMPLATES:
        raise RealmError(f"unknown chat template {name!r}; expected one of {', '.join([*TEMPLATES, 'hh', 'plain'])}")
    t = TEMPLATES[name]
    body, turns, pos = _strip(text, t), [], 0
    for match in t.turn.finditer(body):
        if body[pos:match.start()].strip():
            break
        turns.append({"role": t.role(match.group(1)), "content": match.group(2)})
        pos = match.end()
    rest = body[pos:]
    if rest.strip():
        last = t.open_turn.match(rest.lstrip("\n"))
        if last is None:
            raise RealmError(f"text does not follow the {name} chat template after {len(turns)} turns: "
                             f"{excerpt(rest, 80)!r}")
        turns.append({"role": t.role(last.group(1)), "content": _strip(last.group(2), t)})
    if not turns:
        raise RealmError(f"no {name} turns found in {excerpt(text, 80)!r}")
    return turns


def split_sample(query: str, prompt: str | None = None, template: str | None = None) -> tuple[list[Message], str]:
    """(prompt messages, response) of one RL sample: ``query`` is the whole templated text; ``prompt``, when given, is
    the templated prompt it starts with (OpenRLHF's ``prompts``). The response is the last assistant turn."""
    name = template or detect(prompt or query)
    if prompt is not None and prompt and name != "plain":
        if not query.startswith(prompt):
            raise RealmError("the query does not start with its prompt")
        messages = [m for m in parse(prompt, name) if m["role"] != "assistant" or m["content"]]
        response = parse(prompt + query[len(prompt):], name)[-1]
        return messages, response["content"] if response["role"] == "assistant" else query[len(prompt):]
    if prompt is not None and name == "plain":
        if not query.startswith(prompt):
            raise RealmError("the query does not start with its prompt")
        return [{"role": "user", "content": prompt}], query[len(prompt):]
    turns = parse(query, name)
    if len(turns) < 2 or turns[-1]["role"] != "assistant":
        raise RealmError(f"the {name} text does not end in an assistant turn: {excerpt(query, 80)!r}")
    return turns[:-1], turns[-1]["content"]
