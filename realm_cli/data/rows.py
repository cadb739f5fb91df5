"""Building blocks for dataset plugins: a row-reading source base class and field checks that locate every error.

A plugin subclasses ``RowSource``, names its default local file (under ``shared_data_dir()``) and hub id, and
implements ``convert(row, where)``; the field helpers raise ``BadRecord`` with file:line, field and expectation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from realm_cli.contracts import BadRecord, DatasetSource, Message, PreferenceRecord

from realm_cli.data.load import shared_data_dir
from realm_cli.data.files import Location, ReadError, hub_rows, read_rows
from realm_cli.config import printable
from realm_cli.errors import RealmError

ROLES = ("system", "user", "assistant")


def bad(where: Location, field: str | None, reason: str, kind: str) -> BadRecord:
    return BadRecord(where.file, where.line, field, reason, kind)


def record_id(where: Location) -> str:
    name = where.file if where.file.startswith("hf://") else (where.name or Path(where.file).name)
    return f"{name}:{where.line}" if where.line is not None else name


def shared_path(relative: str) -> Path | None:
    """``relative`` under the shared data directory, when this machine has it."""
    root = shared_data_dir()
    if root is None:
        return None
    path = root / relative
    return path if path.exists() else None


def field(row: dict, key: str, where: Location):
    if key not in row:
        keys = ", ".join(sorted(map(printable, row))[:12])
        raise bad(where, key, f"missing key (the record has: {keys})", "missing key")
    return row[key]


def text(row: dict, key: str, where: Location) -> str:
    value = field(row, key, where)
    if not isinstance(value, str):
        raise bad(where, key, f"expected a string, got {type(value).__name__}", "wrong type")
    return value


def messages(value, where: Location, key: str) -> list[Message]:
    """A chat-message list: ``[{"role": "user"|"assistant"|"system", "content": str}, ...]``."""
    if not isinstance(value, list):
        raise bad(where, key, f"expected a list of chat messages, got {type(value).__name__}", "wrong type")
    out: list[Message] = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise bad(where, f"{key}[{i}]", "expected a message with 'role' and 'content'", "wrong type")
        if m["role"] not in ROLES:
            raise bad(where, f"{key}[{i}].role", f"expected one of {', '.join(ROLES)}, got {m['role']!r}",
                      "wrong type")
        if not isinstance(m["content"], str):
            raise bad(where, f"{key}[{i}].content", f"expected a string, got {type(m['content']).__name__}",
                      "wrong type")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def prompt_value(value, where: Location, key: str) -> list[Message]:
    """A prompt given as plain text (one user turn) or as chat messages."""
    if isinstance(value, str):
        if not value.strip():
            raise bad(where, key, "empty prompt", "empty prompt")
        return [{"role": "user", "content": value}]
    msgs = messages(value, where, key)
    if not msgs:
        raise bad(where, key, "empty prompt (no messages)", "empty prompt")
    return msgs


def response_value(value, where: Location, key: str) -> str:
    """A response given as text or as a completion message list ending in one assistant turn."""
    if isinstance(value, str):
        return value
    msgs = messages(value, where, key)
    if len(msgs) != 1 or msgs[0]["role"] != "assistant":
        raise bad(where, key, f"expected one assistant message as the completion, got roles "
                              f"{[m['role'] for m in msgs]}", "wrong type")
    return msgs[0]["content"]


def split_conversations(chosen: list[Message], rejected: list[Message], where: Location,
                        keys: tuple[str, str]) -> tuple[list[Message], str, str]:
    """Full conversations sharing their prompt turns -> (prompt, chosen final turn, rejected final turn)."""
    for conv, key in ((chosen, keys[0]), (rejected, keys[1])):
        if len(conv) < 2 or conv[-1]["role"] != "assistant":
            raise bad(where, key, "expected a conversation ending in an assistant turn", "wrong type")
    if chosen[:-1] != rejected[:-1]:
        turn = next(i for i, (a, b) in enumerate(zip(chosen[:-1] + [None], rejected[:-1] + [None])) if a != b)
        raise bad(where, f"{keys[1]}[{turn}]", "the prompt turns differ between chosen and rejected",
                  "prompts differ")
    return chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]


def number(row: dict, key: str, where: Location) -> float:
    value = field(row, key, where)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise bad(where, key, f"expected a number, got {value!r}", "wrong type")


def pair(prompt: list[Message], chosen: str, rejected: str, where: Location, *, source: str,
         margin: float | None = None, meta: dict | None = None,
         fields: tuple[str, str] = ("chosen", "rejected"), allow_empty: bool = False) -> PreferenceRecord:
    """A checked record: both responses non-empty (unless ``allow_empty``) and different, else a located
    BadRecord."""
    for value, key in ((chosen, fields[0]), (rejected, fields[1])):
        if not value.strip() and not allow_empty:
            raise bad(where, key, "empty response", "empty response")
    if chosen.strip() == rejected.strip():
        raise bad(where, fields[1], "chosen and rejected are identical", "chosen == rejected")
    return PreferenceRecord(prompt=prompt, chosen=chosen, rejected=rejected, margin=margin, source=source,
                            id=record_id(where), meta=meta or {})


class RowSource(DatasetSource):
    """A source read row by row from ``config.path``, an explicit ``config.hub_id``, the default local copy under
    ``shared_data_dir()``, or the default hub id, in that order."""

    name = ""  # the registered dataset name, stamped on every record's ``source``
    hub_id: str | None = None
    default_split = "train"

    def default_path(self) -> Path | None:
        """The default local copy (usually under ``shared_data_dir()``), or None."""
        return None

    def hub_kwargs(self) -> dict:
        """Extra ``datasets.load_dataset`` arguments for the hub copy (``name=``, ``data_dir=``)."""
        return {}

    def origin(self) -> str:
        if self.config.path:
            return self.config.path
        if self.config.hub_id:
            return f"hf://{self.config.hub_id}[{self.config.split or self.default_split}]"
        local = self.default_path()
        if local is not None:
            return str(local)
        if self.hub_id:
            return f"hf://{self.hub_id}[{self.config.split or self.default_split}]"
        return ""

    def rows(self) -> Iterator[tuple[Location, dict] | ReadError]:
        if self.config.path:
            yield from read_rows(Path(self.config.path).expanduser())
            return
        local = None if self.config.hub_id else self.default_path()
        if local is not None:
            yield from read_rows(local)
            return
        hub_id = self.config.hub_id or self.hub_id
        if not hub_id:
            raise RealmError(f"dataset {self.name}: no path given and no default location (set path=...)")
        yield from hub_rows(hub_id, self.config.split or self.default_split, **self.hub_kwargs())

    def convert(self, row: dict, where: Location):
        """One record (or a list of records) from one row; raise ``BadRecord`` for bad input."""
        raise NotImplementedError

    def records(self):
        for item in self.rows():
            if isinstance(item, ReadError):
                yield BadRecord(item.where.file, item.where.line, None, item.reason, item.kind)
                continue
            where, row = item
            try:
                out = self.convert(row, where)
            except BadRecord as exc:
                yield exc
                continue
            if isinstance(out, list):
                yield from out
            else:
                yield out
