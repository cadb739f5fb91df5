"""The README runs as written: every fenced shell block, top to bottom, each command for real in a temp directory.

Each block is a test (the slow commands that stand alone, SPLIT, are tests of their own, so pytest-xdist spreads
them over its workers) and runs in a fresh directory beside a
``shared/data`` link, so ``../shared/data`` means what it means beside a checkout; HOME, the realm cache and
matplotlib's config point into the walk's temp root, so nothing is written into the checkout or the user's home.
The converted SmolLM2 of the test machine is linked into that cache (it is read-only there), which saves the 25 s
conversion.

How the walk differs from the README is all in WALK below, one row per README command pattern: arguments it appends
(small limits; a later flag wins over an earlier one), placeholders it fills (the free port of a real ``realm serve``,
a fake NIM server, a tiny random policy), stdin it types, or the one-line error it expects (the hub is unreachable
here). A command no row matches runs exactly as written. Besides those rows the walk runs ``realm serve`` in the
background until ``/health`` answers and stops it when its block ends, runs each ``curl`` with ``-sS -w`` to read its
status (200 and JSON with the documented keys are required), and expects exit 0, no traceback, and the file a
``-o``/``--output`` names. ``runs/cpu-minilm`` and ``runs/align-dpo-smollm2-cpu`` (NEEDS) are made once per session
by their README command (with its table rows) and linked into every block that uses them; where that command
itself stands in the README, the block links the run it made instead of making it twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.shared import REPO, SHARED_DATA

README = REPO / "README.md"
BIN = REPO / ".venv" / "bin"
COMMAND_TIMEOUT = 600  # a command takes 1-140 s here; the limit only stops a hang (2 shared cores under load)


@dataclass(frozen=True)
class Walk:
    match: str  # regex searched in the README command
    add: str = ""  # appended arguments
    replace: tuple[tuple[str, str], ...] = ()  # (README text, what the walk runs instead)
    stdin: str | None = None
    error: str | None = None  # expected: exit 2 and one "error: ..." line containing this
    why: str = ""


ALIGN_SMALL = ("model.name={tiny_policy} trainer.rounds=1 trainer.prompts_per_round=2 trainer.k=2 trainer.heldout=2 "
               "trainer.heldout_samples=1 trainer.max_new_tokens=4 'data.train[0].limit=8'")

# THE table: every difference between the walk and the README.
WALK = [
    Walk(r"^make (demo|test|eval-full)\b", replace=(("make ", f"make -n -C {REPO} "),),
         why="make -n: prints the recipe without running it (demo trains for minutes, test is this suite, eval-full "
             "runs whole sets); the commands they run are walked below"),
    Walk(r"^realm train-rm --recipe cpu-minilm\b",
         add="'data.train[0].limit=16' 'data.validation.llmbar-natural[0].limit=4' "
             "'data.validation.helpful-rejection-sampled[0].limit=4' 'data.validation.mt-bench-human[0].limit=4' "
             "trainer.max_steps=2 "
             "trainer.max_minutes=null trainer.per_device_batch_size=4 trainer.eval_batch_size=8",
         why="2 steps on 16 pairs instead of 5.5 minutes"),
    Walk(r"^realm train-rm --recipe gemma2b-zero3\b", replace=(("model.name=smollm2-135m-instruct",
                                                                "model.name={tiny_policy}"),),
         why="the tiny random Llama: the walk checks the ZeRO-3 launch on 2 CPU processes, not SmolLM2's quality"),
    Walk(r"^realm serve\b", replace=(("--port 8000", "--port {port}"),),
         why="a free port; runs in the background until /health answers, stopped at the end of its block"),
    Walk(r"^curl\b", replace=(("localhost:8000", "localhost:{port}"),), add="-sS -w '\\n%{{http_code}}'",
         why="the port realm serve got; -w prints the status, which must be 200, and the body must be JSON with "
             "the documented keys"),
    Walk(r"^realm align\b", add=ALIGN_SMALL,
         why="a tiny random Llama with SmolLM2's tokenizer and chat template; 1 round, 2 prompts x 2 samples"),
    Walk(r"^realm align\b.*(--algo dpo|align-dpo)", add="trainer.epochs=1 trainer.train_batch_size=2"),
    Walk(r"^realm align\b.*align-ppo", add="--rounds 1 trainer.steps_per_round=1 trainer.prompts_per_step=2 "
                                           "trainer.ppo_epochs=1 trainer.minibatch_size=2"),
    Walk(r"^realm align\b.*align-grpo", add="trainer.train_batch_size=4"),
    Walk(r"^realm eval (reward-bench|preference)\b", add="--limit 4", why="4 pairs per set"),
    Walk(r"^realm eval reward-bench\b.*--data allenai/", error="Couldn't reach",
         why="a hub dataset: offline it is one line naming path=..."),
    Walk(r"^realm eval truthfulqa\b", add="--limit 2", why="2 questions"),
    Walk(r"^realm eval truthfulqa\b.*--judge", add="max_new_tokens=4", why="4-token answers"),
    Walk(r"^realm eval --recipe eval-llmbar-embedding\b",
         add="'evaluators[0].data[0].limit=4' 'evaluators[1].sets.hh-helpful[0].limit=4' "
             "'evaluators[1].sets.hh-harmless[0].limit=4'", why="4 pairs per set"),
    Walk(r"^realm data inspect\b", add="limit=200", why="the first 200 records"),
    Walk(r"^realm run --recipe pipeline-cpu\b", add="--dry-run", why="21 minutes: prints its steps, each walked "
                                                                     "above on its own"),
    Walk(r"^realm score --reward nim\b", add="reward.base_url={fake_nim}",
         why="a fake NIM server on 127.0.0.1 (a local base_url needs no key)"),
    Walk(r"^realm score\b.*--input\b", add="--batch-size 8"),
    Walk(r"^realm score\b.*--interactive", stdin="Hi\nHello!\nGo away.\n\n\n", why="types one prompt, two answers"),
    Walk(r"^realm push\b", error="offline mode is enabled", why="the hub is unreachable: one line saying so"),
    Walk(r"(^|\| )realm chat\b", add="--max-new-tokens 4 --temperature 0", why="4-token replies"),
    Walk(r"^realm chat\b(?!.*(-m|--message)\b)", stdin="Hello\n/reset\nHi\n/exit\n", why="types two turns"),
]

# Where a block is split into separate tests (see chunks): the slow commands, which stand alone.
SPLIT = r"^realm (align|eval truthfulqa|train-rm --recipe gemma2b-zero3)\b"

# Blocks the walk cannot run at all (must stay short): none today.
NOT_RUN: dict[str, str] = {}

# Run directories a block may use without making them: (the README command that makes it, once per session; what
# in a block, comments included, means it is used: blend's default RM member is runs/cpu-minilm).
NEEDS = {"runs/cpu-minilm": ("realm train-rm --recipe cpu-minilm", r"runs/cpu-minilm|\bblend\b"),
         "runs/align-dpo-smollm2-cpu": ("realm align --algo dpo --reward embedding", r"runs/align-dpo-smollm2-cpu")}

# What the documented HTTP endpoints answer (README, "Rewards, realm score and realm serve").
DOCUMENTED_KEYS = {"/score": {"scores", "extras"}, "/get_reward": {"rewards", "scores", "extra_logs"},
                   "/pooling": {"data"}, "/classify": {"data"}, "/health": {"status"}}


# --- reading the README ---------------------------------------------------------------------------------------------
def strip_comment(line: str) -> str:
    """A shell line without its trailing ``# comment`` (a ``#`` inside quotes or a word stays)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands_of(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    out, pending = [], ""
    for raw in block.splitlines():
        line = strip_comment(raw)
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line.strip()).strip()
        pending = ""
        if line:
            out.append(line)
    return out


def blocks() -> list[tuple[str, list[str], str]]:
    """(id, commands, text) of every fenced bash/sh/shell/console block, in README order; the id names the section and the
    block's line."""
    text = README.read_text()
    found = []
    for m in re.finditer(r"^```(?:bash|sh|shell|console)\n(.*?)^```", text, flags=re.M | re.S):
        line = text[:m.start()].count("\n") + 1
        headings = re.findall(r"^#{2,3} (.+)$", text[:m.start()], flags=re.M)
        section = re.sub(r"[^a-z0-9]+", "-", (headings[-1] if headings else "top").lower()).strip("-")[:40]
        found.append((f"{section}:L{line}", commands_of(m.group(1)), m.group(1)))
    return found


WRITES = re.compile(r"(?:\s-o|\s--output|\s--output-dir|>)\s*([^\s;|&]+)")


def chunks(commands: list[str]) -> list[list[str]]:
    """A block split before each command matching SPLIT that uses no file an earlier command of its block wrote
    (``-o``/``--output``/``>``), so the slow, independent parts run as separate tests on parallel workers."""
    out: list[list[str]] = []
    written: set[str] = set()
    for command in commands:
        uses_earlier = any(path in command for path in written)
        if not out or (re.search(SPLIT, command) and not uses_earlier):
            out.append([])
        out[-1].append(command)
        written.update(WRITES.findall(command))
    return out


def cases() -> list[tuple[str, list[str], str]]:
    """The tests: (id, commands, text searched for NEEDS: the block's, comments included, when it is not split)
    per chunk of every block, in README order."""
    found = []
    for name, commands, text in blocks():
        parts = chunks(commands)
        for i, part in enumerate(parts):
            found.append((name, part, text) if len(parts) == 1 else (f"{name}.{i + 1}", part, "\n".join(part)))
    return found


def rows_for(command: str) -> list[Walk]:
    return [row for row in WALK if re.search(row.match, command)]


def prepare(command: str, fill: dict[str, str]) -> tuple[str, str | None, str | None]:
    """(the command the walk runs, its stdin, the error it expects) for a README command; ``{name}`` placeholders
    (and ``{{``/``}}``) are filled in the table's text only, never in the README's."""
    def table_text(text: str) -> str:
        for key, value in fill.items():
            text = text.replace("{" + key + "}", value)
        return text.replace("{{", "{").replace("}}", "}")

    rows = rows_for(command)
    for row in rows:
        for old, new in row.replace:
            command = command.replace(old, table_text(new))
        if row.add:
            command += " " + table_text(row.add)
    stdin = next((r.stdin for r in rows if r.stdin is not None), None)
    error = next((r.error for r in rows if r.error is not None), None)
    return command, stdin, error


# --- the walk's world -----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class World:
    """The temp root every block runs under: HOME, cache, ../shared/data, and the session's NEEDS runs."""

    def __init__(self, root: Path, smollm2_dir: str, tiny_policy: str, fake_nim: str):
        self.root = root
        self.fill = {"tiny_policy": tiny_policy, "fake_nim": fake_nim}
        (root / "shared").mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (root / "shared" / "data").symlink_to(SHARED_DATA)
        (root / "home").mkdir(exist_ok=True)
        models = root / "cache" / "models"
        models.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (models / "smollm2-135m-instruct").symlink_to(smollm2_dir)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NVIDIA_", "REALM_", "PYTEST_", "HF_TOKEN")) and k != "COV_CORE_SOURCE"}
        env.update(HOME=str(root / "home"), REALM_CACHE=str(root / "cache"), REALM_SHARED_DATA=str(SHARED_DATA),
                   MPLCONFIGDIR=str(root / "home" / "mpl"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PATH=f"{BIN}:{os.environ['PATH']}",
                   XDG_CACHE_HOME=str(root / "home" / ".cache"))
        self.env = env

    def cwd(self, name: str) -> Path:
        path = self.root / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        path.mkdir(exist_ok=True)
        return path

    def need(self, run: str) -> Path:
        """The NEEDS run, made by its README command once for all workers of the session (a file lock)."""
        made = self.root / "needs" / run.replace("/", "_")
        made.mkdir(parents=True, exist_ok=True)
        with open(made / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (made / ".done").exists():
                command = next(c for _, cs, _ in blocks() for c in cs if c == NEEDS[run][0])
                self.run_one(command, made, {})
                (made / ".done").write_text(command)
        return made / run

    def run_one(self, command: str, cwd: Path, fill: dict, servers: list | None = None) -> str:
        """Run one README command as the walk does; return what it printed on stdout."""
        ran, stdin, error = prepare(command, {**self.fill, **fill})
        if command.startswith("realm serve"):
            assert servers is not None
            servers.append(self.start_server(ran, cwd, fill["port"]))
            return ""
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", ran], cwd=cwd, env=self.env, input=stdin or "", text=True,
                              capture_output=True, timeout=COMMAND_TIMEOUT)
        print(f"[walk {time.monotonic() - started:5.1f}s] {ran}")  # shown with -s, or when the test fails
        where = f"README command: {command}\nwalk ran: {ran}\n--- stdout ---\n{done.stdout[-3000:]}\n" \
                f"--- stderr ---\n{done.stderr[-3000:]}"
        assert "Traceback (most recent call last)" not in done.stderr, where
        if error is not None:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip() and "[WARNING]" not in ln]
            assert done.returncode == 2 and lines and lines[-1].startswith("error:") and error in lines[-1], where
            return done.stdout
        assert done.returncode == 0, where
        if command.startswith("curl"):
            check_http(command, done.stdout, where)
        written = re.search(r"\s(?:-o|--output|--output-dir)\s+(\S+)", ran)
        if written and not ran.startswith("curl"):
            assert (cwd / written.group(1)).exists(), f"{written.group(1)} was not written\n{where}"
        return done.stdout

    def start_server(self, ran: str, cwd: Path, port: str):
        proc = subprocess.Popen(["bash", "-c", f"exec {ran}"], cwd=cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        token = (cwd / "token.txt").read_text().strip() if "--token-file token.txt" in ran else None
        import httpx

        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{ran} exited {proc.returncode}:\n{proc.stdout.read()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5,
                                   headers={"Authorization": f"Bearer {token}"} if token else {})
                if health.status_code == 200:
                    assert health.json()["status"] == "ok"
                    return proc
            time.sleep(0.5)
        proc.kill()
        pytest.fail(f"{ran}: /health never answered")


def check_http(command: str, stdout: str, where: str) -> None:
    body, _, status = stdout.rstrip("\n").rpartition("\n")
    assert status == "200", where
    answer = json.loads(body)
    path = re.search(r"localhost:\d+(/[\w/]*)", command)
    keys = DOCUMENTED_KEYS.get(path.group(1) if path else "", set())
    assert keys <= set(answer), f"{sorted(keys - set(answer))} missing\n{where}"


@pytest.fixture(scope="session")
def world(tmp_path_factory, smollm2_dir, tiny_llama_dir):
    from support.fake_nim import FakeNim

    base = tmp_path_factory.getbasetemp()
    # under pytest-xdist every worker has its own basetemp inside one shared parent: the NEEDS runs live there
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "readme-walk"
    with FakeNim() as nim:
        yield World(root, smollm2_dir, tiny_llama_dir, nim.base_url)


# --- the tests ------------------------------------------------------------------------------------------------------
BLOCKS = blocks()
CASES = cases()


@pytest.mark.parametrize("block", CASES, ids=[c[0] for c in CASES])
def test_readme_block_runs_as_written(block, world, tmp_path):
    name, commands, text = block
    if name in NOT_RUN:
        pytest.fail(f"NOT_RUN lists {name}: {NOT_RUN[name]}")  # never silently skipped (and the list is empty)
    cwd = tmp_path / "checkout"  # a fresh directory per block (chunk); ../shared/data beside it like a checkout's
    cwd.mkdir()
    (tmp_path / "shared").symlink_to(world.root / "shared")
    makers = {NEEDS[run][0]: run for run in NEEDS}
    for run, (maker, uses) in NEEDS.items():
        if re.search(uses, text) or maker in commands:
            (cwd / run).parent.mkdir(parents=True, exist_ok=True)
            (cwd / run).symlink_to(world.need(run))
    servers: list[subprocess.Popen] = []
    fill = {"port": str(free_port())}
    try:
        for command in commands:
            if command in makers:  # this very command (same table rows) made the linked run once this session
                print(f"[walk session] {command} -> {cwd / makers[command]}")
                continue
            world.run_one(command, cwd, fill, servers)
    finally:
        for proc in servers:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()


def test_every_row_of_the_table_matches_a_readme_command():
    """A row whose command left the README is stale: the table must say exactly how the walk differs."""
    commands = [c for _, cs, _ in BLOCKS for c in cs]
    assert len(BLOCKS) >= 7 and len(commands) >= 40
    for row in WALK:
        assert any(re.search(row.match, c) for c in commands), f"no README command matches {row.match!r}"
    for run, (maker, _) in NEEDS.items():
        assert maker in commands, f"{run}: the README has no command {maker!r}"
    assert len(NOT_RUN) <= 2
    for name, commands, _ in BLOCKS:  # a split never separates a file from the command that reads it
        parts = chunks(commands)
        for i, part in enumerate(parts):
            earlier = {p for before in parts[:i] for c in before for p in WRITES.findall(c)}
            assert not [p for c in part for p in earlier if p in c], (name, i)


def test_the_walk_reads_commands_as_a_shell_does():
    block = ('realm a --x "q # not a comment"   # comment\n\n# whole-line comment\ncurl -H "A: b" \\\n'
             "     -d '{\"k\": 1}'   # OpenRLHF\n")
    assert commands_of(block) == ['realm a --x "q # not a comment"', "curl -H \"A: b\" -d '{\"k\": 1}'"]
    ran, _, _ = prepare("curl localhost:8000/score -d '{\"items\": []}'", {"port": "1234"})
    assert ran == "curl localhost:1234/score -d '{\"items\": []}' -sS -w '\\n%{http_code}'"
