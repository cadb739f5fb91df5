"""Plugins: the manager (every plugin, built-in or third-party, comes in through the ``realm`` entry-point group),
the registry (name -> object, plugin, distribution, per kind), and the one spec resolver.

``spec(kind, ref, options, where)`` is how every command, recipe block and plugin turns "a name plus options" into a
validated ``PluginSpec``: the options are checked against the plugin's ``Config`` dataclass, errors are one line
naming the key path. For datasets ``ref`` may also be a file, a folder or a hub id: the plugin is guessed from what
each dataset plugin declares (its ``signature``, see ``realm_cli.data.guess``).
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pluggy

from realm_cli import hookspecs
from realm_cli.config import ConfigError, PluginSpec, parse_overrides, validate
from realm_cli.errors import RealmError

GROUP = "realm"
OWN_DISTRIBUTION = "realm-cli"
KINDS = ("reward", "dataset", "trainer", "evaluator", "recipe")
HOOKS = {
    "reward": "register_rewards",
    "dataset": "register_datasets",
    "trainer": "register_trainers",
    "evaluator": "register_evaluators",
    "recipe": "register_recipes",
}


# --- the registry -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: Any
    plugin: str
    distribution: str
    version: str
    description: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "plugin": self.plugin, "distribution": self.distribution,
                "version": self.version, "description": self.description}


class DuplicateNameError(RealmError):
    pass


class UnknownNameError(RealmError):
    pass


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


class Registry:
    """Name -> ``Entry`` per plugin kind; names are global per kind."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, name: str, obj: Any, *, plugin: str, distribution: str = "", version: str = "",
            description: str | None = None) -> Entry:
        if kind not in self._entries:
            raise ValueError(f"unknown plugin kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(name, str) or not name:
            raise RealmError(f"plugin {plugin} registered a {kind} with an invalid name {name!r}")
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise DuplicateNameError(f"{kind} {name!r} is registered twice: by {existing.plugin} "
                                     f"({existing.distribution}) and by {plugin} ({distribution})")
        if description is None and (isinstance(obj, type) or callable(obj)):
            description = getattr(obj, "__doc__", None)
        entry = Entry(kind, name, obj, plugin, distribution, version, first_line(description or ""))
        self._entries[kind][name] = entry
        return entry

    def get(self, kind: str, name: str) -> Entry:
        entries = self._entries[kind]
        if name in entries:
            return entries[name]
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = f" (known: {', '.join(sorted(entries))})" if entries and not close else ""
        raise UnknownNameError(f"unknown {kind} {name!r}{hint}{known}")

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = [kind] if kind else list(KINDS)
        return [self._entries[k][n] for k in kinds for n in sorted(self._entries[k])]


# --- the plugin manager -------------------------------------------------------------------------------------------
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
    providers = set()
    for ep in md.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        providers.add(_normalise(dist))
        if not _allowed(dist):
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.value)
        except Exception as exc:  # a broken third-party plugin must not take the CLI down
            state.failures.append(Failure(dist, ep.value, f"{type(exc).__name__}: {exc}"))
            continue
        state.origins[ep.value] = (dist, version)
    wanted = [n.strip() for n in os.environ.get("REALM_LOAD_PLUGINS", "").split(",") if n.strip()]
    for name in wanted:  # a typo would otherwise silently load nothing
        if _normalise(name) not in providers:
            state.failures.append(Failure("REALM_LOAD_PLUGINS", name, "no installed distribution of that name provides "
                                          f"realm plugins (installed: {', '.join(sorted(providers)) or 'none'})"))
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


# --- the one spec resolver ----------------------------------------------------------------------------------------
def config_class(kind: str, name: str, path: str) -> type:
    """The ``Config`` dataclass of plugin ``name`` (the resolver ``config.validate`` calls for nested blocks)."""
    try:
        obj = registry().get(kind, name).obj
    except RealmError as exc:
        raise ConfigError(f"{path}.name: {exc}") from None
    return getattr(obj, "Config")


def spec(kind: str, ref: str | dict, options: dict | list[str] | None = None, where: str | None = None, *,
         plugin: str | None = None) -> PluginSpec:
    """A validated ``PluginSpec`` for plugin ``ref`` of ``kind``.

    ``ref``: a registered name, or a whole block ``{name, **options}``; for datasets also a file, a folder or a hub
    id (OWNER/NAME), whose plugin is guessed from the dataset plugins' signatures unless ``plugin`` names it.
    ``options``: a mapping (YAML values, or override text typed by the plugin's ``Config``), or ``KEY=VALUE``
    strings; an already validated ``Config`` instance is taken as it is.
    ``where``: the block's key path in errors (default ``"<kind> <name>"``): ``where.alpha: expected a number``.
    """
    if isinstance(options, (list, tuple)):
        options = parse_overrides(list(options))
    if isinstance(ref, dict):
        block = dict(ref)
    elif kind == "dataset":
        from realm_cli.data.guess import block as dataset_block

        block = dataset_block(ref, plugin=plugin, options=options)
    else:
        block = {"name": ref}
    name = block.get("name")
    path = where or f"{kind} {name}"
    config = options
    if config is not None and isinstance(name, str) and not isinstance(config, dict):
        cls = config_class(kind, name, path)
        if isinstance(config, cls):
            return PluginSpec(name, config)
        raise ConfigError(f"{path}: expected a mapping of options, got {config!r}")
    for key, value in (config or {}).items():
        if key == "name":
            raise ConfigError(f"{path}.name: the {kind} is {name!r}; give other plugins as their own block")
        block[key] = value
    return validate(PluginSpec, block, path, config_class, kind)


def instance(kind: str, plugin_spec: PluginSpec):
    """Instantiate the reward or dataset plugin a spec names (raw options, e.g. a ``Config`` default, validated)."""
    cls = lookup(kind, plugin_spec.name)
    if not isinstance(plugin_spec.options, cls.Config):
        plugin_spec = spec(kind, plugin_spec.name, plugin_spec.options or {})
    return cls(plugin_spec.options)
