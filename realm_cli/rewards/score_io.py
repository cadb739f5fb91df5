"""What `realm score` does with a reward: a comparison table, a resumable JSONL file, an interactive loop."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from realm_cli.rewards.safe import json_float
from realm_cli.contracts import Message, as_messages
from realm_cli.errors import RealmError
from realm_cli.contracts import Reward
from realm_cli.tables import metrics_table

out = Console()
err = Console(stderr=True)


def _winner(scores: list[float]) -> int | None:
    valid = [s for s in scores if not math.isnan(s)]
    if not valid or valid.count(max(valid)) > 1:
        return None
    return scores.index(max(valid))


def _scalar_extras(extras: dict, n: int) -> dict[str, list]:
    """Extras shown as table columns: per-sample numbers or text (quantile lists are summarised)."""
    shown = {}
    for name, values in extras.items():
        if not isinstance(values, list) or len(values) != n:
            continue
        if all(isinstance(v, (int, float)) or v is None for v in values):
            shown[name] = [f"{v:.4g}" if v is not None else "" for v in values]
        elif all(isinstance(v, str) or v is None for v in values):
            shown[name] = [v or "" for v in values]
        elif all(isinstance(v, list) and v for v in values):
            shown[name] = [f"{min(v):.3g} … {max(v):.3g}" for v in values]
    return shown


def print_scores(reward: Reward, prompt: str | list[Message], responses: list[str], *, as_json: bool = False) -> None:
    messages = as_messages(prompt)
    batch = reward.score_batch([messages] * len(responses), responses)
    best = _winner(batch.scores)
    if as_json:
        print(json.dumps({"scores": [json_float(s) for s in batch.scores], "winner": best, "extras": batch.extras}))
        return
    table = Table(title=f"prompt: {messages[-1]['content'][:70]}", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True, min_width=2)
    table.add_column("response", overflow="ellipsis", max_width=32, no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True, min_width=10)
    extras = _scalar_extras(batch.extras, len(responses))
    for name in extras:
        table.add_column(name, justify="right", overflow="ellipsis", no_wrap=True, min_width=min(10, len(name)),
                         max_width=24)
    for i, (response, s) in enumerate(zip(responses, batch.scores)):
        mark = " [green]★[/green]" if i == best else ""
        table.add_row(str(i + 1), response, ("NaN" if math.isnan(s) else f"{s:.4f}") + mark,
                      *[values[i] for values in extras.values()])
    out.print(table)
    if len(responses) > 1:
        out.print(f"winner: response {best + 1}" if best is not None else "winner: none (tie or unscored)")


OUTPUT_MARK = "input_sha"  # every row realm writes carries the hash of the input row it scored


@dataclass
class FilePlan:
    """What ``realm score --input/--output`` will do, decided before any model loads."""

    input_path: Path
    output_path: Path
    rows: list[tuple[int, dict]]  # (input line, row), every row checked
    done: dict[int, dict]  # input line -> the output row kept from an earlier run
    cut_tail: int  # bytes of a half-written last line (an interrupted run of realm's own) to drop
    retry_failed: bool

    @property
    def todo(self) -> list[tuple[int, dict]]:
        return [(n, row) for n, row in self.rows if n not in self.done]


def _keys(row: dict) -> list[str]:
    return ["response"] if "response" in row else ["chosen", "rejected"]


def row_sha(row: dict) -> str:
    """The input row's content hash: a resumed run keeps a score only while the row it scored is unchanged."""
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def read_input(path: Path) -> list[tuple[int, dict]]:
    """(line, row) for every row of a JSONL/JSON/CSV/Parquet (optionally .gz) file, read by the data plugins' own
    readers: each row is checked here (a prompt as text or chat messages, plus ``response`` or ``chosen`` and
    ``rejected``), and the first bad one is a one-line error with file:line and the field."""
    from realm_cli.contracts import BadRecord
    from realm_cli.data import files, rows as rowlib

    if path.is_dir():
        raise RealmError(f"--input {path}: is a directory; give one data file")
    rows: list[tuple[int, dict]] = []
    try:
        for item in files.read_rows(path):
            if isinstance(item, files.ReadError):
                raise RealmError(f"{item.where}: {item.reason}")
            where, row = item
            rowlib.prompt_value(rowlib.field(row, "prompt", where), where, "prompt")
            if "response" not in row and not ("chosen" in row or "rejected" in row):
                raise rowlib.bad(where, "response", "missing key: rows need 'response', or 'chosen' and 'rejected'",
                                 "missing key")
            for key in _keys(row):
                if not isinstance(rowlib.field(row, key, where), str):
                    raise rowlib.bad(where, key, f"expected a string, got {type(row[key]).__name__}", "wrong type")
            rows.append((where.line, row))
    except BadRecord as exc:
        raise RealmError(str(exc)) from None
    except OSError as exc:
        raise RealmError(f"--input {path}: {exc.strerror or exc}") from None
    if not rows:
        raise RealmError(f"--input {path}: no rows to score")
    return rows


def _check_output_path(input_path: Path, output_path: Path) -> None:
    if output_path.exists() and output_path.is_dir():
        raise RealmError(f"--output {output_path}: is a directory; name a file inside it")
    if output_path.exists() and input_path.exists() and output_path.resolve() == input_path.resolve():
        raise RealmError(f"--output {output_path} is the --input file; name another file (realm never writes into "
                         f"its input)")
    for parent in output_path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RealmError(f"--output {output_path}: {parent} is a file, not a directory")
            break
    if output_path.exists():
        try:
            with output_path.open("rb"):
                pass
        except OSError as exc:
            raise RealmError(f"--output {output_path}: cannot read it to resume ({exc.strerror})") from None


def plan_file(input_path: Path, output_path: Path, *, retry_failed: bool = False,
              rows: list[tuple[int, dict]] | None = None, shard: bool = False) -> FilePlan:
    """Check the input and the output before anything loads. An existing output is resumed only when every row of it
    is one realm wrote for this very input (the ``input_sha`` of each row matches the input row at its line); any
    other file is an error and is left exactly as it is. ``rows``: the input rows already read (a shard's slice of
    them, see realm_cli.rewards.shards), else the input is read here; ``shard``: see ``read_output``."""
    _check_output_path(input_path, output_path)
    rows = read_input(input_path) if rows is None else rows
    if not output_path.exists():
        return FilePlan(input_path, output_path, rows, {}, 0, retry_failed)
    done, tail = read_output(output_path, dict(rows), input_path, shard=shard)
    if retry_failed:
        done = {n: r for n, r in done.items() if not _failed(r)}
    return FilePlan(input_path, output_path, rows, done, tail, retry_failed)


def read_output(output_path: Path, by_line: dict[int, dict], input_path: Path, *,
                shard: bool = False) -> tuple[dict[int, dict], int]:
    """The latest row per input line of a realm score output (or shard), each checked against ``by_line``, and the
    byte count of a half-written last line (an interrupted run), which the caller cuts before appending. A shard
    (a file under realm's own shard name) may hold nothing but that half line: its rank died in its first write."""
    raw = output_path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    done: dict[int, dict] = {}
    not_ours = (f"{output_path} exists and is not a `realm score` output for this input; realm leaves it as it is: "
                f"pick another --output")
    try:
        text = complete.decode("utf-8")
    except UnicodeDecodeError:
        raise RealmError(not_ours) from None
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
            n, sha = int(result["line"]), result[OUTPUT_MARK]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise RealmError(f"{output_path}:{k}: {not_ours}") from None
        if n not in by_line or row_sha(by_line[n]) != sha:
            raise RealmError(f"{output_path}:{k}: scores input line {n} as it was; {input_path}:{n} has changed "
                             f"since (or is gone): score into a new --output")
        done[n] = result  # a later row for the same line (a retried failure) supersedes an earlier one
    tail = len(raw) - len(complete)
    if tail and not done and not shard:
        raise RealmError(not_ours)  # no complete realm row before it: this file is not a half-written realm output
    return done, tail


def _failed(result: dict) -> bool:
    return any(result.get(name) is None for name in score_names(result))


def score_names(row: dict) -> list[str]:
    """The score fields of an output row: ``score``, or ``chosen_score`` and ``rejected_score``."""
    return ["score" if key == "response" else f"{key}_score" for key in _keys(row)]


def write_scores(reward: Reward, plan: FilePlan, batch_size: int, *, progress: bool = True) -> int:
    """Score ``plan.todo`` into ``plan.output_path`` (after cutting a half-written last line), flushed batch by
    batch so an interruption loses at most the batch in flight; returns how many scores were NaN."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    todo, rows, output_path = plan.todo, plan.rows, plan.output_path
    output_path.parent.mkdir(parents=True, exist_ok=True)
    if plan.cut_tail:  # the half-written last line of an interrupted run (a realm output, checked in plan_file)
        with output_path.open("r+b") as fh:
            fh.truncate(output_path.stat().st_size - plan.cut_tail)
    nan = 0
    with output_path.open("a", encoding="utf-8") as sink, Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err,
            transient=True, disable=not progress) as bar:
        task = bar.add_task("score", total=len(rows), completed=len(rows) - len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            prompts, responses = [], []
            for _, row in chunk:
                for key in _keys(row):
                    prompts.append(as_messages(row["prompt"]))
                    responses.append(row[key])
            batch = reward.score_batch(prompts, responses)
            errors = batch.extras.get("error") or [None] * len(responses)
            i = 0
            for n, row in chunk:
                result = {**row, "line": n, OUTPUT_MARK: row_sha(row)}
                result.pop("errors", None)
                for key, name in zip(_keys(row), score_names(row)):
                    result[name] = json_float(batch.scores[i])
                    if math.isnan(batch.scores[i]):
                        nan += 1
                        result.setdefault("errors", {})[key] = errors[i]
                    i += 1
                sink.write(json.dumps(result, ensure_ascii=False) + "\n")
            sink.flush()
            bar.advance(task, len(chunk))
    return nan


def score_file(reward: Reward, plan: FilePlan, batch_size: int, *, as_json: bool = False) -> dict:
    nan = write_scores(reward, plan, batch_size)
    if plan.todo and (plan.retry_failed or not _in_order(plan.output_path)):
        _compact(plan.output_path, [n for n, _ in plan.rows])
    return report_file(plan, nan_now=nan, as_json=as_json)


def report_file(plan: FilePlan, *, nan_now: int, as_json: bool = False) -> dict:
    """The summary of a scored output: printed as a table (or one JSON object) and returned."""
    todo, rows, output_path = plan.todo, plan.rows, plan.output_path
    summary = _summarise(output_path, plan)
    summary.update(scored_now=len(todo), resumed_past=len(rows) - len(todo), nan_now=nan_now)
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(metrics_table(f"scored {output_path}", summary))
        if summary["still_failed"]:
            err.print(f"[yellow]{summary['still_failed']} rows have no score (null, with the error); rerun with "
                      f"--retry-failed to score them again[/yellow]", highlight=False)
    return summary


def _latest(path: Path) -> dict[int, dict]:
    latest: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            result = json.loads(line)
            latest[int(result["line"])] = result
    return latest


def _in_order(path: Path) -> bool:
    """Whether the rows run in input order, each line once (an output resumed from folded shards may have gaps
    that the rows scored now, appended, leave out of order)."""
    lines = [json.loads(line)["line"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return all(a < b for a, b in zip(lines, lines[1:]))


def _compact(path: Path, order: list[int]) -> None:
    """After retries the file holds superseded rows: rewrite it (realm's own, checked) with the latest row per input
    line, in input order, through a temporary file so an interruption leaves the old file whole."""
    write_in_order(path, _latest(path), order)


def write_in_order(path: Path, latest: dict[int, dict], order: list[int]) -> None:
    """``path`` becomes one row per input line of ``order`` that ``latest`` has, written to a temporary file first
    and renamed over it, so an interruption leaves either the old file or the new one, whole."""
    tmp = path.with_name(path.name + ".realm-tmp")
    tmp.write_text("".join(json.dumps(latest[n], ensure_ascii=False) + "\n" for n in order if n in latest),
                   encoding="utf-8")
    tmp.replace(path)


def _summarise(path: Path, plan: FilePlan) -> dict:
    """Counted over the latest row per input line (a retried failure supersedes its earlier row)."""
    rows = list(_latest(path).values())
    pairs = [r for r in rows if "chosen_score" in r]
    scored = [r for r in pairs if r["chosen_score"] is not None and r["rejected_score"] is not None]
    summary: dict = {"rows": len(rows), "still_failed": sum(_failed(r) for r in rows)}
    if pairs:
        summary["pairs_scored"] = len(scored)
        if scored:
            summary["chosen_wins"] = sum(r["chosen_score"] > r["rejected_score"] for r in scored) / len(scored)
    return summary


def score_interactively(reward: Reward) -> None:
    """Prompt, then responses one per line (a blank line scores them); an empty prompt or Ctrl-D quits."""
    from rich.prompt import Prompt

    while True:
        try:
            prompt = Prompt.ask("[bold]prompt[/bold] (empty to quit)", console=err, default="", show_default=False)
            if not prompt.strip():
                return
            responses = []
            while True:
                line = Prompt.ask(f"response {len(responses) + 1} (empty to score)", console=err, default="",
                                  show_default=False)
                if not line.strip():
                    break
                responses.append(line)
        except (EOFError, KeyboardInterrupt):
            return
        if responses:
            print_scores(reward, prompt, responses)


def show_reward_stats(reward: Reward) -> None:
    stats = getattr(reward, "stats", None)
    if callable(stats):
        text = ", ".join(f"{k}={v}" for k, v in stats().items())
        err.print(f"[dim]reward stats: {text}[/dim]", highlight=False)
