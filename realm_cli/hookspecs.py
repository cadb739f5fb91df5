"""Every way to extend realm: one hook per plugin kind.

Each ``register_*`` hook receives a ``register(name, obj, description=None)`` callback. Call it once per thing the
plugin provides. Names are global per kind: two plugins registering the same name is an error naming both.

What ``obj`` must be, per kind:

- reward: a subclass of ``realm_cli.contracts.Reward`` (the class, not an instance). Its nested ``Config`` dataclass
  declares the options a recipe's ``reward:`` block may set.
- dataset: a subclass of ``realm_cli.contracts.DatasetSource`` with a ``Config`` dataclass of source-specific options.
- trainer: a subclass of ``realm_cli.contracts.Trainer`` with a ``Config`` dataclass (the recipe's ``trainer:`` block).
- evaluator: a subclass of ``realm_cli.contracts.Evaluator`` with a ``Config`` dataclass (the recipe's ``evaluator:`` block).
- recipe: a path (``pathlib.Path`` or ``importlib.resources`` traversable) to a recipe YAML file.

Plugin modules are imported when the CLI starts: keep them light (no torch/transformers at module level).
"""

import pluggy

hookspec = pluggy.HookspecMarker("realm")
hookimpl = pluggy.HookimplMarker("realm")


@hookspec
def register_rewards(register):
    """Register reward functions."""


@hookspec
def register_datasets(register):
    """Register dataset sources."""


@hookspec
def register_trainers(register):
    """Register trainers."""


@hookspec
def register_evaluators(register):
    """Register evaluators."""


@hookspec
def register_recipes(register):
    """Register recipe files."""


@hookspec
def register_commands(app):
    """Register additional CLI commands on the Typer app."""
