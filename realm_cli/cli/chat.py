"""`realm chat RUN_DIR|MODEL`: talk to an aligned policy (reward models: `realm score --interactive`)."""

from __future__ import annotations

import sys

import typer


def chat(
    target: str = typer.Argument(..., help="An align run directory (its policy/), a model directory, an alias or a "
                                           "hub id.", show_default=False),
    message: list[str] = typer.Option(None, "--message", "-m",
                                      help="Send this message, print the reply and exit (repeat for several turns)."),
    system: str = typer.Option(None, "--system", help="A system message at the head of the conversation."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Longest reply, in tokens."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, help="Sampling temperature; 0 = greedy."),
    top_p: float = typer.Option(0.95, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass."),
    seed: int = typer.Option(None, "--seed", help="Seed the sampler (repeatable replies)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16 or float16."),
):
    """Chat with a policy: its chat template, the reply streamed as it is generated, the conversation kept.
    Type /reset to start over, /exit (or Ctrl-D) to quit. Not a terminal on stdin (a pipe, a file): each line is a
    user turn and only the replies are printed."""
    from rich.console import Console

    from realm_cli.align import chat as policy_chat

    err = Console(stderr=True)
    model, tokenizer = policy_chat.load(target, dtype=dtype)
    if seed is not None:
        from transformers import set_seed

        set_seed(seed)
    session = policy_chat.Chat(model, tokenizer, system=system, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if message:
        policy_chat.converse(session, message, write)
    elif not sys.stdin.isatty():
        policy_chat.converse(session, sys.stdin, write)
    else:
        err.print(f"[dim]chatting with {target} ({', '.join(f'{k}: {v}' for k, v in policy_chat.COMMANDS.items())}"
                  f")[/dim]", highlight=False)
        policy_chat.converse(session, _typed_lines(err), write, before_reply=lambda: write("assistant> "))


def _typed_lines(err):
    while True:
        try:
            yield input("you> ")
        except (EOFError, KeyboardInterrupt):
            err.print()
            return
