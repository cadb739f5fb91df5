"""Streaming row readers for every file format a dataset plugin may read, each row located by file and line.

Rows come out as ``(where, row)`` pairs where ``where`` is ``"file:line"``-ready (``Location``); a row that cannot be
read becomes a ``BadRecord`` in the stream instead, so the caller's ``on_bad_record`` policy decides, and the readers
never hold a whole file in memory (except ``.json`` arrays, which have no line structure to stream by).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from realm_cli.errors import RealmError

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz", ".parquet")


@dataclass(frozen=True, slots=True)
class Location:
    file: str  # path as the user named it, or "hf://hub_id[split]"
    line: int | None  # 1-based line (JSONL, JSON arrays), row (CSV data rows count from line 2), or row index
    name: str | None = None  # the file's name for record ids: relative to the folder the user named, if a folder

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


class ReadError(Exception):
    """A row that could not be read at all (not JSON, bad UTF-8, truncated compressed stream)."""

    def __init__(self, where: Location, kind: str, reason: str):
        super().__init__(reason)
        self.where, self.kind, self.reason = where, kind, reason


Row = tuple[Location, dict]


def data_files(path: Path) -> list[Path]:
    """``path`` itself, or the supported data files under a directory (sorted, recursive)."""
    if not path.exists():
        raise RealmError(f"{path}: no such file or directory")
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        if not found:
            raise RealmError(f"{path}: directory holds no data files ({', '.join(SUFFIXES)})")
        return found
    if not path.name.endswith(SUFFIXES):
        raise RealmError(f"{path}: unsupported file type (expected one of {', '.join(SUFFIXES)})")
    return [path]


def read_rows(path: Path | str) -> Iterator[Row | ReadError]:
    """Every row of a supported file (or of each file under a directory), streamed. Under a directory each row's
    ``Location.name`` is the file's path relative to it, so ``a/c.jsonl`` and ``b/c.jsonl`` give distinct ids."""
    root = Path(path)
    for file in data_files(root):
        if root.is_dir():
            yield from _named(_rows_of(file), file.relative_to(root).as_posix())
        else:
            yield from _rows_of(file)


def _named(items, name: str):
    for item in items:
        if isinstance(item, ReadError):
            item.where = replace(item.where, name=name)
            yield item
        else:
            yield replace(item[0], name=name), item[1]


def _rows_of(file: Path) -> Iterator[Row | ReadError]:
    name = file.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        yield from _json_lines(file)
    elif name.endswith((".json", ".json.gz")):
        yield from _json_file(file)
    elif name.endswith((".csv", ".csv.gz")):
        yield from _csv_rows(file)
    else:
        yield from _parquet_rows(file)


def _open_binary(file: Path):
    return gzip.open(file, "rb") if file.name.endswith(".gz") else open(file, "rb")


def _lines(file: Path) -> Iterator[tuple[int, str] | ReadError]:
    """Decoded lines, one at a time: bad UTF-8 spoils only its own line; a cut-off gzip ends the stream located."""
    line_no = 0
    with _open_binary(file) as fh:
        while True:
            try:
                raw = fh.readline()
            except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
                yield ReadError(Location(str(file), line_no + 1), "truncated file",
                                f"compressed stream ends early ({exc}); lines after {line_no} are lost")
                return
            if not raw:
                return
            line_no += 1
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield ReadError(Location(str(file), line_no), "bad UTF-8",
                                f"invalid UTF-8 byte 0x{raw[exc.start]:02x} at column {exc.start + 1}")


def _json_lines(file: Path) -> Iterator[Row | ReadError]:
    for item in _lines(file):
        if isinstance(item, ReadError):
            yield item
            continue
        line_no, text = item
        if not text.strip():
            continue
        where = Location(str(file), line_no)
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            yield ReadError(where, "invalid JSON", f"invalid JSON at column {exc.colno}: {exc.msg}")
            continue
        if not isinstance(row, dict):
            yield ReadError(where, "wrong type", f"expected a JSON object, got {type(row).__name__}")
            continue
        yield where, row


def _json_file(file: Path) -> Iterator[Row | ReadError]:
    """A JSON array of objects (each located at the line it starts on) or, failing that, JSON lines."""
    with _open_binary(file) as fh:
        head = fh.read(4096).lstrip()
    if not head.startswith(b"["):
        yield from _json_lines(file)
        return
    try:
        with _open_binary(file) as fh:
            text = fh.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        yield ReadError(Location(str(file), None), "bad UTF-8", f"invalid UTF-8 at byte {exc.start}")
        return
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        yield ReadError(Location(str(file), None), "truncated file", f"compressed stream ends early ({exc})")
        return
    # The stdlib decoder parses one element at a time, so each object keeps the line it starts on.
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line = text.count("\n", 0, pos) + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            if text[pos] == "\n":
                line += 1
            pos += 1
        if pos >= len(text):
            yield ReadError(Location(str(file), line), "invalid JSON", "file ends inside the JSON array (missing ']')")
            return
        if text[pos] == "]":
            return
        start_line = line
        try:
            row, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield ReadError(Location(str(file), exc.lineno), "invalid JSON",
                            f"invalid JSON at column {exc.colno}: {exc.msg}; the rest of the array is unreadable")
            return
        line += text.count("\n", pos, end)
        pos = end
        where = Location(str(file), start_line)
        if not isinstance(row, dict):
            yield ReadError(where, "wrong type", f"expected a JSON object, got {type(row).__name__}")
            continue
        yield where, row


def _csv_rows(file: Path) -> Iterator[Row | ReadError]:
    raw = _open_binary(file)
    # utf-8-sig: TruthfulQA v1's CSV starts with a byte-order mark.
    with io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            for row in reader:
                where = Location(str(file), reader.line_num)
                if None in row:
                    yield ReadError(where, "wrong type", f"{len(row[None])} more fields than the header has")
                    continue
                yield where, row
        except UnicodeDecodeError as exc:
            yield ReadError(Location(str(file), reader.line_num + 1), "bad UTF-8", f"invalid UTF-8 ({exc.reason})")
        except csv.Error as exc:
            yield ReadError(Location(str(file), reader.line_num), "invalid CSV", str(exc))
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            yield ReadError(Location(str(file), reader.line_num + 1), "truncated file",
                            f"compressed stream ends early ({exc})")


def _parquet_rows(file: Path) -> Iterator[Row | ReadError]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(file)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants for a damaged file
        raise RealmError(f"{file}: not a readable Parquet file ({exc})") from None
    index = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            index += 1
            yield Location(str(file), index), row


def hub_rows(hub_id: str, split: str, **kwargs) -> Iterator[Row]:
    """Rows of a Hugging Face hub dataset, streamed; an unreachable or unknown id is one clear RealmError.

    ``kwargs`` go to ``datasets.load_dataset`` (``name=`` for a config, ``data_dir=`` for a subfolder)."""
    import datasets

    extra = "".join(f"/{v}" for v in kwargs.values() if v)
    label = f"hf://{hub_id}{extra}[{split}]"
    try:
        stream = datasets.load_dataset(hub_id, split=split, streaming=True, **kwargs)
        iterator = iter(stream)
        first = next(iterator, None)
    except Exception as exc:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ValueError...)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RealmError(f"hub dataset {label} could not be loaded: {first_line} "
                         f"(pass path=... to read a local copy)") from None
    if first is None:
        return
    yield Location(label, 1), dict(first)
    index = 1
    while True:
        try:
            row = next(iterator, None)
        except Exception as exc:  # a connection lost mid-stream: one clear line naming the row reached
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RealmError(f"hub dataset {label}: reading stopped after row {index}: {first_line}") from None
        if row is None:
            return
        index += 1
        yield Location(label, index), dict(row)
