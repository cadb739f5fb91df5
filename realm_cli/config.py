"""Strict validation of plain data (YAML, overrides) into dataclasses, with key paths in every error.

Dotted overrides (``trainer.learning_rate=3e-4``) are kept as raw text until the declared type is known, so
``3e-4`` becomes a float for a float field and stays the string "3e-4" for a string field.

Why not pydantic (installed anyway, through fastapi): measured on pydantic 2.x, validating plugins' plain
dataclasses through ``TypeAdapter`` silently drops unknown keys (``stpes: 3`` passes; forbidding extras needs
``__pydantic_config__`` on every plugin's ``Config``, third parties' too), takes ``true`` for an int, cannot read
override text such as ``[p, q]`` as a list, has no hook for "a block whose options are validated by the ``Config``
of the plugin its ``name`` picks" (``plugin_field``), and words errors as "Input should be a valid integer" with
no did-you-mean. Each of those would need code of its own around it, so the ~150 lines below stay; pydantic would
also add ~0.1 s of import to every command that loads a recipe (``realm --help`` imports neither).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import yaml

from realm_cli.errors import RealmError


class ConfigError(RealmError):
    pass


class RawOverride(str):
    """Text from a ``key=value`` override, parsed once the target type is known."""


@dataclass
class PluginSpec:
    """A recipe block naming a plugin plus that plugin's own options (validated against its ``Config``)."""

    name: str
    options: Any = None


def plugin_field(kind: str, *, default=dataclasses.MISSING, default_factory=dataclasses.MISSING):
    """A dataclass field holding ``PluginSpec`` (or a list of them) for plugins of ``kind``."""
    kw = {"metadata": {"plugin_kind": kind}}
    if default is not dataclasses.MISSING:
        kw["default"] = default
    if default_factory is not dataclasses.MISSING:
        kw["default_factory"] = default_factory
    return field(**kw)


INDEXED = re.compile(r"^([^\[\]]+)((?:\[\d+\])+)$")


def _segments(part: str, item: str) -> list:
    """``train[0]`` -> ["train", 0]; a list item is addressed by its index, as in ``data.train[0].limit=200``."""
    if "[" not in part and "]" not in part:
        return [part]
    match = INDEXED.match(part)
    if match is None:
        raise ConfigError(f"override {item!r}: {part!r}: expected NAME or NAME[INDEX]")
    return [match.group(1), *(int(i) for i in re.findall(r"\d+", match.group(2)))]


def parse_overrides(items: list[str]) -> dict:
    """``["a.b=1", "c=x=y", "d.e[0].f=2"]`` -> nested dict of RawOverride values (split on the first ``=``); a list
    index becomes an int key, applied to that item of the list by ``merge``."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. trainer.learning_rate=1e-5")
        key, value = item.split("=", 1)
        raw_parts = key.strip().split(".")
        if not all(raw_parts):
            raise ConfigError(f"override {item!r}: empty key segment in {key!r}")
        parts = [seg for part in raw_parts for seg in _segments(part, item)]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is set to a value and used as a section")
        node[parts[-1]] = RawOverride(value)
    return out


def merge(base: dict, overrides: dict, path: str = "") -> dict:
    out = dict(base)
    for key, value in overrides.items():
        where = _join(path, key)
        if isinstance(value, dict) and value and all(isinstance(k, int) for k in value):
            items = out.get(key)
            if not isinstance(items, list):
                raise ConfigError(f"{where}: [index] overrides need a list here, got "
                                  f"{'nothing' if items is None else type(items).__name__}")
            out[key] = _merge_items(items, value, where)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, where)
        else:
            out[key] = value
    return out


def _merge_items(items: list, overrides: dict, path: str) -> list:
    items = list(items)
    for index, value in overrides.items():
        if index >= len(items):
            raise ConfigError(f"{path}[{index}]: the list has {len(items)} item{'s' * (len(items) != 1)} "
                              f"(indices from 0)")
        if isinstance(value, dict) and isinstance(items[index], dict):
            items[index] = merge(items[index], value, f"{path}[{index}]")
        else:
            items[index] = value
    return items


def _type_name(tp) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _fail(path: str, expected: str, value) -> ConfigError:
    return ConfigError(f"{path or '<root>'}: expected {expected}, got {value!r}")


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few hundred bytes of nested aliases expand to billions of nodes (the
    "billion laughs"), and no realm recipe needs them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"aliases (*{event.anchor}) are not allowed in recipes: write the value out",
                event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(text: str):
    """``yaml.safe_load`` without aliases; raises ``yaml.YAMLError`` (see ``yaml_error`` for its one-line text)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_error(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """(1-based line or None, one-line reason) of a YAML error (PyYAML's own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return (mark.line + 1 if mark is not None else None), " ".join(str(reason).split())


def _yaml_value(text: str):
    try:
        return load_yaml(text) if text.strip() else ""
    except yaml.YAMLError:
        return str(text)


PluginResolver = typing.Callable[[str, str, str], type]  # (kind, name, path) -> Config dataclass


def validate(tp, value, path: str = "", resolver: PluginResolver | None = None, plugin_kind: str | None = None):
    """Check ``value`` against type ``tp`` and convert it; raise ConfigError naming ``path`` on mismatch."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return _yaml_value(value) if isinstance(value, RawOverride) else value
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, RawOverride) and value.strip().lower() in ("null", "none", "~")):
            if len(non_none) < len(args):
                return None
            raise _fail(path, _type_name(tp), None)
        errors = []
        for arg in non_none:
            try:
                return validate(arg, value, path, resolver, plugin_kind)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _fail(path, " or ".join(_type_name(a) for a in non_none), value)
    if origin is Literal:
        v = _yaml_value(value) if isinstance(value, RawOverride) else value
        if v in args:
            return v
        if isinstance(value, RawOverride) and str(value) in args:
            return str(value)
        raise _fail(path, "one of " + ", ".join(repr(a) for a in args), value)
    if tp is PluginSpec:
        return _plugin_spec(value, path, resolver, plugin_kind)
    if origin in (list, tuple) or tp in (list, tuple):
        v = _yaml_value(value) if isinstance(value, RawOverride) else value
        if isinstance(v, (str, dict)) or not isinstance(v, (list, tuple)):
            raise _fail(path, "a list", value)
        item_tp = args[0] if args else Any
        return [validate(item_tp, item, f"{path}[{i}]", resolver, plugin_kind) for i, item in enumerate(v)]
    if origin is dict or tp is dict:
        v = _yaml_value(value) if isinstance(value, RawOverride) else value
        if not isinstance(v, dict):
            raise _fail(path, "a mapping", value)
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): validate(val_tp, item, f"{path}.{k}", resolver, plugin_kind) for k, item in v.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path, resolver)
    if tp is bool:
        v = _yaml_value(value) if isinstance(value, RawOverride) else value
        if isinstance(v, bool):
            return v
        raise _fail(path, "true or false", value)
    if tp is int:
        v = _yaml_value(value) if isinstance(value, RawOverride) else value
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise _fail(path, "an integer", value)
    if tp is float:
        v = value
        if isinstance(v, str):  # YAML 1.1 reads 3e-4 as a string: coerce to the declared type
            try:
                return float(v)
            except ValueError:
                raise _fail(path, "a number", value) from None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise _fail(path, "a number", value)
    if tp is str:
        if isinstance(value, str):
            return str(value)
        raise _fail(path, "a string", value)
    raise TypeError(f"config type {tp!r} at {path} is not supported")


def _plugin_spec(value, path, resolver, kind):
    if isinstance(value, PluginSpec):  # built in code: validated already, or a name with raw options
        if value.options is not None and not isinstance(value.options, dict):
            return value
        value = {"name": value.name, **(value.options or {})}
    if isinstance(value, RawOverride):
        value = {"name": str(value)}
    elif isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise _fail(path, f"a {kind} block with a 'name'", value)
    if "name" not in value:
        raise ConfigError(f"{path}.name: required ({kind} plugin name)")
    name = validate(str, value["name"], f"{path}.name")
    options = {k: v for k, v in value.items() if k != "name"}
    if resolver is None or kind is None:
        return PluginSpec(name, options)
    config_cls = resolver(kind, name, path)
    return PluginSpec(name, from_dict(config_cls, options, path, resolver))


def from_dict(cls, data, path: str = "", resolver: PluginResolver | None = None):
    """Build dataclass ``cls`` from a mapping: unknown keys, missing required keys and wrong types are errors."""
    if data is None:
        data = {}
    if isinstance(data, RawOverride):
        raise _fail(path, "a section (use dotted keys to set its fields)", data)
    if not isinstance(data, dict):
        raise _fail(path, "a mapping", data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        import difflib

        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(fields)})"
        raise ConfigError(f"{_join(path, key)}: unknown key{hint}")
    kwargs = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name in data:
            kwargs[name] = validate(hints[name], data[name], sub, resolver, f.metadata.get("plugin_kind"))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required")
        elif resolver is not None and f.metadata.get("plugin_kind"):  # a default plugin block: validated too
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if default is not None:
                kwargs[name] = validate(hints[name], default, sub, resolver, f.metadata["plugin_kind"])
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ checks
        raise ConfigError(f"{path or '<root>'}: {exc}") from None


def _join(path: str, key) -> str:
    key = printable(key)
    return f"{path}.{key}" if path else key


def printable(value) -> str:
    """A user-given key or name for a one-line message: control characters (a newline in a YAML key) escaped."""
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def to_dict(obj) -> Any:
    """Plain data for YAML/JSON output (PluginSpec flattened back to ``{name, **options}``)."""
    if isinstance(obj, PluginSpec):
        return {"name": obj.name, **(to_dict(obj.options) or {})}
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
