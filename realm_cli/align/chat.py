"""Talking to an aligned policy (`realm chat`): find the policy in a run directory (or take a model directory, alias
or hub id), keep the conversation, apply the tokenizer's chat template and stream the reply token by token.

Streaming is transformers' ``TextIteratorStreamer``: ``generate()`` runs in a worker thread and the streamer yields
decoded text as it arrives (it holds back an incomplete word, so multi-byte characters never come out half).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from realm_cli import models
from realm_cli.errors import RealmError

COMMANDS = {"/reset": "forget the conversation (the system message stays)", "/exit": "quit"}


def policy_location(target: str) -> str:
    """The model ``realm chat TARGET`` loads: ``TARGET/policy`` for an align run, ``TARGET`` itself for a model
    directory, else an alias or hub id. A run directory without a policy is one clear error."""
    path = Path(target).expanduser()
    if not path.exists():
        models.resolve(target)  # an alias or hub id; a path-looking name that does not exist is an error here
        return target
    if not path.is_dir():
        raise RealmError(f"{target}: not a directory; realm chat takes an align run directory (with policy/), a "
                         f"model directory, an alias or a hub id")
    for folder in (path / "policy", path):
        if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
            if folder == path and (path / "realm_rm.json").is_file():
                raise RealmError(f"{target}: a reward model (realm train-rm output), not a policy; talk to it with "
                                 f"`realm score --reward bt reward.model={target} --interactive`")
            return str(folder)
    what = "a run directory" if (path / "metrics.json").is_file() else "a directory"
    raise RealmError(f"{target}: {what} with no policy (no policy/ folder, no config.json or adapter_config.json); "
                     f"realm chat takes the output directory of `realm align` or a model directory")


def load(target: str, dtype: str = "auto"):
    """(model, tokenizer) of the policy at ``target``; a LoRA adapter is applied on its recorded base (an alias
    resolves offline). The tokenizer must have a chat template."""
    from transformers import AutoTokenizer

    from realm_cli.align.policy import device

    location = policy_location(target)
    where = device()  # a GPU when there is one (dtype auto: bf16 there)
    with models.loading(target):
        tokenizer = AutoTokenizer.from_pretrained(models.local_path(location))
    if not getattr(tokenizer, "chat_template", None):
        raise RealmError(f"{target}: its tokenizer has no chat template, so there is no way to format a "
                         f"conversation for it; chat with an instruct/chat model (e.g. smollm2-135m-instruct)")
    adapter = Path(location) / "adapter_config.json"
    if adapter.is_file() and not (Path(location) / "config.json").is_file():
        from peft import PeftModel

        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not base:
            raise RealmError(f"{adapter}: field 'base_model_name_or_path': missing; expected the base model's "
                             f"alias, hub id or path")
        with models.loading(location):
            model = PeftModel.from_pretrained(models.load_causal_lm(base, dtype=dtype, device=where),
                                              location).eval()
    else:
        model = models.load_causal_lm(location, dtype=dtype, device=where)
    model.to(where)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@dataclass
class Chat:
    """A conversation with one policy: the history, and a streamed reply to each user turn."""

    model: object
    tokenizer: object
    system: str | None = None
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    history: list[dict] = field(default_factory=list)
    prompt_tokens: int = 0  # of the latest reply's input: the whole templated conversation

    def messages(self, user: str | None = None) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        tail = [{"role": "user", "content": user}] if user is not None else []
        return head + self.history + tail

    def reset(self) -> None:
        self.history.clear()

    def stream(self, user: str) -> Iterator[str]:
        """Yield the reply to ``user`` as it is generated; when it ends, both turns join the history."""
        import torch
        from transformers import TextIteratorStreamer

        ids = self.tokenizer.apply_chat_template(self.messages(user), add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        self.prompt_tokens = int(ids["input_ids"].shape[1])
        device = next(self.model.parameters()).device
        ids = {k: v.to(device) for k, v in ids.items()}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = ({"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
                    if self.temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None,
                                                  "top_k": None})
        failure: list[BaseException] = []

        def generate():
            try:
                with torch.inference_mode():
                    self.model.generate(**ids, streamer=streamer, max_new_tokens=self.max_new_tokens,
                                        pad_token_id=self.tokenizer.pad_token_id, **sampling)
            except BaseException as exc:  # surfaced in the caller's thread below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        parts = []
        for text in streamer:
            parts.append(text)
            yield text
        worker.join()
        if failure:
            raise failure[0]
        self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": "".join(parts).strip()}]


def converse(chat: Chat, lines: Iterable[str], write: Callable[[str], None],
             before_reply: Callable[[], None] = lambda: None) -> int:
    """Answer each line in turn (``/reset`` forgets, ``/exit`` stops; blank lines are ignored); the number of
    replies."""
    replies = 0
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text == "/exit":
            break
        if text == "/reset":
            chat.reset()
            write("[conversation reset]\n")
            continue
        before_reply()
        for piece in chat.stream(text):
            write(piece)
        write("\n")
        replies += 1
    return replies
