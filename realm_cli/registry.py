"""Name -> (object, plugin, distribution, description), per plugin kind."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from realm_cli.errors import RealmError

KINDS = ("reward", "dataset", "trainer", "evaluator", "recipe")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: Any
    plugin: str
    distribution: str
    version: str
    description: str

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "description": self.description,
        }


class DuplicateNameError(RealmError):
    pass


class UnknownNameError(RealmError):
    pass


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, name: str, obj: Any, *, plugin: str, distribution: str = "", version: str = "",
            description: str | None = None) -> Entry:
        if kind not in self._entries:
            raise ValueError(f"unknown plugin kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(name, str) or not name:
            raise RealmError(f"plugin {plugin} registered a {kind} with an invalid name {name!r}")
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise DuplicateNameError(
                f"{kind} {name!r} is registered twice: by {existing.plugin} ({existing.distribution}) "
                f"and by {plugin} ({distribution})"
            )
        if description is None and (isinstance(obj, type) or callable(obj)):
            description = getattr(obj, "__doc__", None)
        desc = description or ""
        entry = Entry(kind, name, obj, plugin, distribution, version, first_line(desc))
        self._entries[kind][name] = entry
        return entry

    def get(self, kind: str, name: str) -> Entry:
        entries = self._entries[kind]
        if name in entries:
            return entries[name]
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = f" (known: {', '.join(sorted(entries))})" if entries and not close else ""
        raise UnknownNameError(f"unknown {kind} {name!r}{hint}{known}")

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = [kind] if kind else list(KINDS)
        return [self._entries[k][n] for k in kinds for n in sorted(self._entries[k])]
