import typer

from realm_cli.cli import options

REWARD = typer.Option(None, "--reward", help="Reward plugin to align against (replaces the recipe's reward block; "
                      "set its options with reward.KEY=VALUE overrides). 'none' = offline DPO on the data's pairs.")
ALGO = typer.Option(None, "--algo", help="dpo, ppo, rs, grpo or rloo. Without --recipe, picks the recipe "
                    "align-<algo>-smollm2-cpu.")
ROUNDS = typer.Option(None, "--rounds", min=1, help="Rounds of sample-score-update (sets trainer.rounds).")
RECIPE = typer.Option(None, "--recipe", "-r", help="Recipe name (see `realm recipes list`) or path to a YAML file.")


def align(
    recipe: str = RECIPE,
    overrides: list[str] = options.OVERRIDES,
    reward: str = REWARD,
    algo: str = ALGO,
    rounds: int = ROUNDS,
    dry_run: bool = options.DRY_RUN,
    resume: bool = options.RESUME,
    launched: bool = options.LAUNCHED,
):
    """Align a policy against any reward (DPO, PPO, rejection sampling, GRPO, RLOO)."""
    from realm_cli.recipes import runner
    from realm_cli.cli.align_flags import derive

    ref, rest = derive(recipe, algo, reward, list(overrides or []))
    if rounds is not None:
        rest.append(f"trainer.rounds={rounds}")
    runner.run("align", ref, rest, dry_run=dry_run, resume=resume, launched=launched)
