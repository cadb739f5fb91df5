"""`realm align`: a recipe, or the default recipe of ``--algo``, with ``--algo``/``--reward``/``--rounds`` applied.

``--reward`` replaces the recipe's whole ``reward:`` block (its options come from ``reward.KEY=VALUE`` overrides),
which dotted overrides alone cannot express (they merge into the old block). The flags edit the recipe's data in
memory; the result is validated like any recipe and handed to the runner (a launched run re-enters on the resolved
recipe.yaml the runner writes into the run directory).
"""

from __future__ import annotations

import dataclasses
import shlex

import typer

from realm_cli.cli import options

ALGOS = ("dpo", "ppo", "rs", "grpo", "rloo")
REWARD = typer.Option(None, "--reward", help="Reward plugin to align against (replaces the recipe's reward block; "
                      "set its options with reward.KEY=VALUE overrides). 'none' = offline DPO on the data's pairs.")
ALGO = typer.Option(None, "--algo", help="dpo, ppo, rs, grpo or rloo. Without --recipe, picks the recipe "
                    "align-<algo>-smollm2-cpu.")
ROUNDS = typer.Option(None, "--rounds", min=1, help="Rounds of sample-score-update (sets trainer.rounds).")
OUTPUT_DIR = typer.Option(None, "--output-dir", "-o", help="Where the run writes (policy, metrics.json, "
                          "checkpoints); sets the recipe's output_dir.")
RECIPE = typer.Option(None, "--recipe", "-r", help="Recipe name (see `realm recipes list`) or path to a YAML file.")


def align(
    recipe: str = RECIPE,
    overrides: list[str] = options.OVERRIDES,
    reward: str = REWARD,
    algo: str = ALGO,
    rounds: int = ROUNDS,
    output_dir: str = OUTPUT_DIR,
    dry_run: bool = options.DRY_RUN,
    resume: bool = options.RESUME,
    launched: bool = options.LAUNCHED,
):
    """Align a policy against any reward (DPO, PPO, rejection sampling, GRPO, RLOO)."""
    from realm_cli.recipes import runner

    built = build_recipe(recipe, algo, reward, list(overrides or []), rounds, output_dir)
    runner.run_recipe(built, "align", dry_run=dry_run, resume=resume, launched=launched)


def default_recipe(algo: str) -> str:
    return f"align-{algo}-smollm2-cpu"


def build_recipe(ref: str | None, algo: str | None, reward: str | None, overrides: list[str],
                 rounds: int | None = None, output_dir: str | None = None):
    """The validated recipe ``realm align`` runs for these flags."""
    from realm_cli.errors import RealmError
    from realm_cli.recipes import recipe as recipes

    if ref is None:
        if algo is None:
            raise RealmError("realm align: give --recipe NAME, or --algo (one of " + ", ".join(ALGOS) + ")")
        ref = default_recipe(algo)
    path = recipes.find(ref)
    raw, header = recipes.read(path)
    rest = list(overrides) + ([f"trainer.rounds={rounds}"] if rounds is not None else []) \
        + ([f"output_dir={output_dir}"] if output_dir is not None else [])
    trainer = raw.get("trainer") if isinstance(raw.get("trainer"), dict) else {}
    if algo is not None and trainer.get("name") != algo:
        raw["trainer"] = _trainer_block(trainer, algo)
    if reward is not None:
        from realm_cli.rewards.options import reward_overrides

        mine = [o for o in rest if o.split("=", 1)[0].split(".", 1)[0] == "reward"]
        rest = [o for o in rest if o not in mine]
        if reward == "none":
            if mine:
                raise RealmError(f"override {mine[0]!r}: --reward none aligns without a reward (offline DPO)")
            raw.pop("reward", None)
        else:
            raw["reward"] = {"name": reward, **reward_overrides(mine)}
    flagged = algo is not None or reward is not None or rounds is not None or output_dir is not None
    if flagged:  # the header is the command that runs it
        flags = [*(["--algo", algo] if algo else []), *(["--reward", reward] if reward else []),
                 *(["--rounds", str(rounds)] if rounds is not None else []),
                 *(["--output-dir", output_dir] if output_dir is not None else [])]
        header = "realm " + shlex.join(["align", "--recipe", ref, *flags, *overrides])
    elif not header:
        return recipes.load(ref, rest)  # says what the first line must be
    return recipes.build(raw, rest, source=str(path), name=recipes.file_name(path), header=header)


def _trainer_block(block: dict, algo: str) -> dict:
    """Switch the trainer plugin, keeping the options the new algorithm also accepts (sampling, rounds, ...)."""
    from realm_cli import plugins

    accepted = {f.name for f in dataclasses.fields(plugins.lookup("trainer", algo).Config)}
    return {"name": algo, **{k: v for k, v in block.items() if k in accepted}}
