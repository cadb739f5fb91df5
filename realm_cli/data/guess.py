"""Which dataset plugin reads a file, a folder or a hub id: each dataset plugin class declares a ``signature``.

One rule for every command that takes a dataset (``realm data inspect|convert TARGET``, ``realm eval ... --data
TARGET``, ``plugins.spec("dataset", TARGET)``):

1. a registered dataset name is that plugin;
2. an existing file or folder goes to the plugin whose signature ``files`` recognise it (a file's name, or entries a
   folder holds), else to the one whose signature best fits its first row (all of its ``keys`` present; the most
   keys wins, a ``row`` check or ``parent`` folder name counts one more), else to the plugin whose signature says
   ``fallback`` (realm's ``preference``, whose own errors then say what is wrong with the file);
3. OWNER/NAME that is not a path goes to the plugin whose signature ``hub_ids`` match it, else to the fallback.

Naming the plugin (``realm data inspect NAME path=FILE``, ``realm eval ... --dataset NAME``) skips the guess.
A plugin without a ``signature`` is never guessed, only named.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from realm_cli.config import PluginSpec
from realm_cli.errors import RealmError


@dataclass(frozen=True)
class Signature:
    """How a dataset plugin's sources are recognised (set as the class attribute ``signature``, one or a tuple).

    keys: the first row carries every one of these keys; ``row`` (a predicate on that row) and ``parent`` (the
        name of the file's folder) narrow a ``keys`` match and make it more specific.
    files: glob patterns: a file whose name matches one, or a folder holding an entry for each, is this plugin's.
    hub_ids: glob patterns of the hub ids this plugin reads, e.g. ``("allenai/reward-bench*",)``.
    fallback: the plugin for files nothing else recognises (at most one plugin should say so).
    """

    keys: Iterable[str] = ()
    row: Callable[[dict], bool] | None = None
    parent: str | None = None
    files: Iterable[str] = ()
    hub_ids: Iterable[str] = ()
    fallback: bool = False

    def __post_init__(self):
        for name in ("keys", "files", "hub_ids"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        object.__setattr__(self, "keys", frozenset(self.keys))

    def fits_row(self, path: Path, row: dict) -> int:
        """How specifically this signature fits the first row (0: not at all)."""
        if not (self.keys or self.row) or not self.keys <= set(row):
            return 0
        if self.parent is not None and path.parent.name != self.parent:
            return 0
        if self.row is not None:
            try:
                if not self.row(row):
                    return 0
            except Exception:  # a predicate tripping over an odd row is no match
                return 0
        return len(self.keys) + (self.row is not None) + (self.parent is not None)

    def fits_path(self, path: Path) -> int:
        if not self.files:
            return 0
        if path.is_dir():
            return len(self.files) if all(next(path.glob(p), None) is not None for p in self.files) else 0
        return 1 if any(fnmatch.fnmatch(path.name, p) for p in self.files) else 0


def signatures(cls) -> tuple[Signature, ...]:
    declared = getattr(cls, "signature", None)
    if declared is None:
        return ()
    return (declared,) if isinstance(declared, Signature) else tuple(declared)


def _declared() -> list[tuple[str, Signature]]:
    from realm_cli import plugins

    return [(e.name, s) for e in plugins.registry().entries("dataset") for s in signatures(e.obj)]


def _best(scored: list[tuple[int, str]]) -> str | None:
    scored = [(score, name) for score, name in scored if score > 0]
    return min(scored, key=lambda s: (-s[0], s[1]))[1] if scored else None


def _fallback(what: str) -> str:
    name = next((n for n, s in _declared() if s.fallback), None)
    if name is None:
        raise RealmError(f"{what}: no dataset plugin recognises it; name one (see `realm plugins`)")
    return name


def first_row(path: Path) -> dict | None:
    from realm_cli.data.files import ReadError, read_rows

    try:
        for item in read_rows(path):
            return None if isinstance(item, ReadError) else item[1]
    except RealmError:  # unreadable: the fallback plugin's own errors will say why
        return None
    return None


def guess_plugin(path: Path) -> str:
    """The dataset plugin that reads ``path``, judged by its layout or its first record (see the module doc)."""
    path = Path(path)
    declared = _declared()
    by_path = _best([(s.fits_path(path), name) for name, s in declared])
    if by_path is not None:
        return by_path
    row = first_row(path)
    by_row = _best([(s.fits_row(path, row), name) for name, s in declared]) if isinstance(row, dict) else None
    return by_row or _fallback(str(path))


def guess_hub(hub_id: str) -> str:
    """The dataset plugin that reads hub dataset ``hub_id``."""
    matches = [(1, name) for name, s in _declared()
               if any(fnmatch.fnmatch(hub_id.lower(), p.lower()) for p in s.hub_ids)]
    return _best(matches) or _fallback(hub_id)


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_hub_id(ref: str) -> bool:
    from realm_cli.data.files import SUFFIXES

    return bool(HUB_ID.fullmatch(ref)) and not ref.lower().endswith(SUFFIXES)


def block(ref: str, *, plugin: str | None = None, options: dict | None = None) -> dict:
    """``ref`` (a dataset name, file, folder or hub id) as a dataset block ``{name[, path | hub_id]}``."""
    from realm_cli import plugins

    registry = plugins.registry()
    if ref in registry.names("dataset"):
        return {"name": ref}
    path = Path(ref).expanduser()
    if path.exists():
        key, value, name = "path", str(path), plugin or guess_plugin(path)
    elif is_hub_id(ref):
        key, value, name = "hub_id", ref, plugin or guess_hub(ref)
    else:
        try:
            registry.get("dataset", ref)
        except RealmError as exc:
            raise RealmError(f"{ref}: no such file or folder, not a hub id (OWNER/NAME), and {exc}") from None
        raise AssertionError("unreachable")
    if key in (options or {}):
        raise RealmError(f"{ref}: give the source either as NAME|PATH|HUB_ID or as {key}=..., not both")
    return {"name": name, key: value}


def spec_from_args(target: str, options: list[str] | None = None) -> PluginSpec:
    """``hh-rlhf subset=harmless-base`` or ``data/pairs.jsonl prompt_key=q`` (the `realm data` arguments)."""
    from realm_cli import plugins

    return plugins.spec("dataset", target, list(options or []))
