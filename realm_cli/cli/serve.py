import asyncio
from pathlib import Path

import typer

REWARD = typer.Option(..., "--reward", help="Reward plugin name (see `realm plugins`).")
OPTIONS = typer.Argument(None, help="Reward options, e.g. reward.model=runs/cpu-minilm reward.batch_size=32.",
                         show_default=False)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    reward: str = REWARD,
    overrides: list[str] = OPTIONS,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; anything but loopback needs a token."),
    port: int = typer.Option(8000, "--port", help="TCP port (0 picks a free one)."),
    token_file: Path = typer.Option(None, "--token-file", help="File holding the bearer token clients must send."),
    max_batch: int = typer.Option(256, "--max-batch", help="Most items one request may carry (more: 422)."),
    max_body_mb: float = typer.Option(8.0, "--max-body-mb", help="Largest request body in MiB (more: 413)."),
    micro_batch: int = typer.Option(64, "--micro-batch", help="Most items merged into one model call."),
    window_ms: float = typer.Option(5.0, "--window-ms", help="How long a request waits to share a model call."),
    chat_template: str = typer.Option(None, "--chat-template",
                                      help="The policy's chat template for templated text (chatml, llama3, gemma, hh, "
                                           "plain); default: detected from each text."),
    allowed_host: list[str] = typer.Option(None, "--allowed-host",
                                           help="Another name clients use in their Host header (repeatable; '*' any). "
                                                "Loopback names and the bound address are always accepted."),
):
    """Serve a reward over HTTP: POST /score, OpenRLHF's POST /get_reward, vLLM's POST /pooling and /classify, GET /health."""
    from rich.console import Console

    from realm_cli.errors import RealmError
    from realm_cli.rewards.build import build_reward
    from realm_cli.rewards.options import spec_from_cli

    console = Console(stderr=True)
    token = None
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise RealmError(f"--token-file {token_file}: {exc.strerror}") from None
        if not token:
            raise RealmError(f"--token-file {token_file}: the file is empty")
    elif host not in LOOPBACK:
        raise RealmError(f"--host {host} exposes the server beyond this machine: give --token-file too")
    if min(max_batch, micro_batch) < 1 or max_body_mb <= 0:
        raise RealmError("--max-batch, --micro-batch and --max-body-mb must be positive")
    from realm_cli.rewards.templates import TEMPLATES

    if chat_template is not None and chat_template not in (*TEMPLATES, "hh", "plain"):
        raise RealmError(f"--chat-template {chat_template}: expected one of {', '.join([*TEMPLATES, 'hh', 'plain'])}")
    _check_port(host, port)  # before the model loads: a busy port should not cost a 20 s load and a traceback

    import uvicorn

    from realm_cli.rewards.server import ServeSettings, build_app

    spec = spec_from_cli(reward, overrides)
    model = build_reward(spec)
    settings = ServeSettings(token=token, max_body_bytes=int(max_body_mb * 1024 * 1024), max_batch=max_batch,
                             micro_batch=micro_batch, window_ms=window_ms,
                             allowed_hosts=(*LOOPBACK, host, *(allowed_host or [])), chat_template=chat_template)
    app = build_app(model, reward, settings)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    async def announce_and_serve():
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()[1]
            auth = "bearer token required" if token else "no auth"
            console.print(f"serving reward [bold]{reward}[/bold] on http://{host}:{bound} ({auth})", highlight=False)
        await task

    try:
        asyncio.run(announce_and_serve())
    finally:
        model.close()


def _check_port(host: str, port: int) -> None:
    import socket

    from realm_cli.errors import RealmError

    if not 0 <= port <= 65535:
        raise RealmError(f"--port {port}: expected a TCP port from 0 to 65535 (0 picks a free one)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RealmError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            raise RealmError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); is another "
                             f"server using it? (--port 0 picks a free one)") from None

