from pathlib import Path

import typer

from realm_cli.cli import options

REWARD = typer.Option(..., "--reward", help="Reward plugin name (see `realm plugins`).")
OPTIONS = typer.Argument(None, help="Reward options, e.g. reward.alpha=0.3 reward.model=runs/cpu-minilm.",
                         show_default=False)


def score(
    reward: str = REWARD,
    overrides: list[str] = OPTIONS,
    prompt: str = typer.Option(None, "--prompt", help="The prompt (one user turn)."),
    responses: list[str] = typer.Option(None, "--response", help="A response to score; repeat to compare several."),
    input_file: Path = typer.Option(None, "--input", help="JSONL rows {prompt, response} or {prompt, chosen, rejected}."),
    output_file: Path = typer.Option(None, "--output", help="Scored JSONL; rerunning resumes where it stopped."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="On resume, score again the rows that have no score (null, with the error)."),
    interactive: bool = typer.Option(False, "--interactive", help="Read prompts and responses in a loop."),
    batch_size: int = typer.Option(64, "--batch-size", help="Rows scored per reward call (--input mode)."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON instead of a table."),
    num_processes: int = typer.Option(1, "--num-processes", "-n", min=1,
                                      help="--input mode: score in N processes (accelerate; one per GPU when there "
                                           "are enough), each its share of the rows into OUT.shard-R-of-N.jsonl, "
                                           "merged into --output in input order. A rerun resumes after a crash."),
    launched: bool = options.LAUNCHED,
):
    """Score responses with any reward plugin: a table, a JSONL file (resumable, shardable), or an interactive
    loop."""
    from realm_cli.errors import RealmError

    modes = [bool(prompt is not None or responses), input_file is not None, interactive]
    if sum(modes) != 1:
        raise RealmError("give exactly one of: --prompt P --response A [--response B ...], --input FILE --output "
                         "FILE, or --interactive")
    if modes[0] and (prompt is None or not responses):
        raise RealmError("--prompt and at least one --response are both required")
    if input_file is not None and output_file is None:
        raise RealmError("--input needs --output (the scored JSONL, which also makes the run resumable)")
    if batch_size < 1:
        raise RealmError("--batch-size must be >= 1")
    if (num_processes > 1 or launched) and input_file is None:
        raise RealmError("--num-processes shards an --input file: give --input FILE --output FILE")

    from realm_cli.rewards.build import build_reward
    from realm_cli.rewards.options import spec_from_cli
    from realm_cli.rewards.score_io import print_scores, score_file, score_interactively, show_reward_stats

    spec = spec_from_cli(reward, overrides)
    if launched:  # one rank of a --num-processes run: score its slice into its shard, print nothing
        from realm_cli import distributed
        from realm_cli.rewards import score_io, shards

        shards.check_launched(num_processes)
        rank_plan = shards.rank_plan(input_file, output_file, retry_failed=retry_failed)
        shards.bind_device()
        model = build_reward(spec)
        try:
            score_io.write_scores(model, rank_plan, batch_size, progress=distributed.is_main_process())
        finally:
            model.close()
        return
    plan = None
    if input_file is not None:  # input and output are checked before the reward (a model, a client) is built
        from realm_cli.rewards import shards
        from realm_cli.rewards.score_io import plan_file, report_file

        plan = plan_file(input_file, output_file, retry_failed=retry_failed)
        if shards.fold(plan):  # what an interrupted sharded run scored is in the output now
            plan = plan_file(input_file, output_file, retry_failed=retry_failed, rows=plan.rows)
        if num_processes > 1:
            args = ["score", "--reward", reward, *(overrides or []), "--input", str(input_file.resolve()),
                    "--output", str(output_file.resolve()), "--batch-size", str(batch_size),
                    "--num-processes", str(num_processes), *(["--retry-failed"] if retry_failed else [])]
            nan = shards.launch_and_merge(plan, args, num_processes)
            report_file(plan, nan_now=nan, as_json=as_json)
            return
    model = build_reward(spec)
    try:
        if modes[0]:
            print_scores(model, prompt, list(responses), as_json=as_json)
        elif interactive:
            score_interactively(model)
        else:
            score_file(model, plan, batch_size, as_json=as_json)
        show_reward_stats(model)
    finally:
        model.close()
