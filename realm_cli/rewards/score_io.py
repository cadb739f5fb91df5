"""What `realm score` does with a reward: a comparison table, a resumable JSONL file, an interactive loop."""

from __future__ import annotations

import json
import math
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


def _read_input(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) for every non-blank line, each checked: a prompt plus a response or a chosen/rejected pair."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RealmError(f"--input {path}: {exc.strerror}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RealmError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise RealmError(f"{path}:{n}: expected a JSON object")
        prompt = row.get("prompt")
        if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in prompt))):
            raise RealmError(f"{path}:{n}: field 'prompt': expected a string or a list of {{role, content}} messages")
        keys = ["response"] if "response" in row else ["chosen", "rejected"]
        for key in keys:
            if not isinstance(row.get(key), str):
                raise RealmError(f"{path}:{n}: field {key!r}: expected a string (rows need 'response', or "
                                 f"'chosen' and 'rejected')")
        rows.append((n, row))
    return rows


def _done_lines(path: Path) -> set[int]:
    """Input line numbers already in the output; a half-written last line (interrupted run) is cut off."""
    if not path.exists():
        return set()
    raw = path.read_bytes()
    keep = raw[: raw.rfind(b"\n") + 1]  # everything up to the last complete line
    if len(keep) != len(raw):
        path.write_bytes(keep)
    done = set()
    for n, line in enumerate(keep.decode("utf-8").splitlines(), 1):
        try:
            done.add(int(json.loads(line)["line"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise RealmError(f"{path}:{n}: not a row written by `realm score` (no 'line'); pick another --output") \
                from None
    return done


def score_file(reward: Reward, input_path: Path, output_path: Path, batch_size: int, *, as_json: bool = False) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    rows = _read_input(input_path)
    done = _done_lines(output_path)
    todo = [(n, row) for n, row in rows if n not in done]
    output_path.parent.mkdir(parents=True, exist_ok=True)
    nan = 0
    with output_path.open("a", encoding="utf-8") as sink, Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err,
            transient=True) as progress:
        task = progress.add_task("score", total=len(rows), completed=len(rows) - len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            prompts, responses = [], []
            for _, row in chunk:
                for key in (["response"] if "response" in row else ["chosen", "rejected"]):
                    prompts.append(as_messages(row["prompt"]))
                    responses.append(row[key])
            batch = reward.score_batch(prompts, responses)
            errors = batch.extras.get("error") or [None] * len(responses)
            i = 0
            for n, row in chunk:
                result = dict(row, line=n)
                for key in (["response"] if "response" in row else ["chosen", "rejected"]):
                    name = "score" if key == "response" else f"{key}_score"
                    result[name] = json_float(batch.scores[i])
                    if math.isnan(batch.scores[i]):
                        nan += 1
                        result.setdefault("errors", {})[key] = errors[i]
                    i += 1
                sink.write(json.dumps(result, ensure_ascii=False) + "\n")
            sink.flush()
            progress.advance(task, len(chunk))
    summary = _summarise(output_path)
    summary.update(scored_now=len(todo), resumed_past=len(rows) - len(todo), nan_now=nan)
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(metrics_table(f"scored {output_path}", summary))
    return summary


def _summarise(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs = [r for r in rows if "chosen_score" in r]
    scored = [r for r in pairs if r["chosen_score"] is not None and r["rejected_score"] is not None]
    summary: dict = {"rows": len(rows)}
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
