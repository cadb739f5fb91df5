"""Plugin manager: every plugin, built-in or third-party, comes in through the ``realm`` entry-point group."""

from __future__ import annotations

import importlib.metadata as md
import os
from dataclasses import dataclass, field
from functools import partial

import pluggy

from realm_cli import hookspecs
from realm_cli.registry import Registry

GROUP = "realm"
OWN_DISTRIBUTION = "realm-cli"
HOOKS = {
    "reward": "register_rewards",
    "dataset": "register_datasets",
    "trainer": "register_trainers",
    "evaluator": "register_evaluators",
    "recipe": "register_recipes",
}


@dataclass(frozen=True)
class Failure:
    distribution: str
    plugin: str
    error: str


@dataclass
class PluginState:
    manager: pluggy.PluginManager
    registry: Registry
    failures: list[Failure] = field(default_factory=list)
    origins: dict[str, tuple[str, str]] = field(default_factory=dict)  # plugin name -> (distribution, version)


def _allowed(dist_name: str) -> bool:
    """REALM_LOAD_PLUGINS=a,b loads only those third-party distributions; empty loads realm's own only."""
    wanted = os.environ.get("REALM_LOAD_PLUGINS")
    if wanted is None or _normalise(dist_name) == _normalise(OWN_DISTRIBUTION):
        return True
    return _normalise(dist_name) in {_normalise(n) for n in wanted.split(",") if n.strip()}


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def build(extra_plugins: list | None = None) -> PluginState:
    """Load all entry-point plugins (plus ``extra_plugins``, for tests) and fill a fresh registry."""
    pm = pluggy.PluginManager("realm")
    pm.add_hookspecs(hookspecs)
    state = PluginState(pm, Registry())
    for ep in md.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        if not _allowed(dist):
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.value)
        except Exception as exc:  # a broken third-party plugin must not take the CLI down
            state.failures.append(Failure(dist, ep.value, f"{type(exc).__name__}: {exc}"))
            continue
        state.origins[ep.value] = (dist, version)
    for plugin in extra_plugins or []:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        pm.register(plugin, name=name)
        state.origins.setdefault(name, ("(local)", ""))
    _fill(state)
    return state


def _fill(state: PluginState) -> None:
    for kind, hook_name in HOOKS.items():
        hook = getattr(state.manager.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            dist, version = state.origins.get(impl.plugin_name, ("(local)", ""))
            register = partial(_register, state.registry, kind, impl.plugin_name, dist, version)
            try:
                impl.function(register)
            except Exception as exc:
                state.failures.append(Failure(dist, impl.plugin_name, f"{type(exc).__name__}: {exc}"))


def _register(registry: Registry, kind: str, plugin: str, dist: str, version: str, name: str, obj, description=None):
    registry.add(kind, name, obj, plugin=plugin, distribution=dist, version=version, description=description)


_state: PluginState | None = None


def state() -> PluginState:
    global _state
    if _state is None:
        _state = build()
    return _state


def registry() -> Registry:
    return state().registry


def reset(new_state: PluginState | None = None) -> None:
    """Drop the cached plugin state (tests install fakes through this)."""
    global _state
    _state = new_state


def lookup(kind: str, name: str):
    """The registered object for ``name``; a RealmError listing close matches when unknown."""
    return registry().get(kind, name).obj
