from dataclasses import dataclass, field
from typing import Literal

import pytest

from realm_cli.config import ConfigError, PluginSpec, from_dict, merge, parse_overrides, plugin_field, to_dict
from realm_cli.errors import RealmError


@dataclass
class Inner:
    rate: float = 0.1
    steps: int = 10
    name: str = "x"
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    limit: int | None = None


@dataclass
class Outer:
    required: str
    inner: Inner = field(default_factory=Inner)


def test_overrides_split_on_first_equals_and_nest():
    assert parse_overrides(["a.b=1", "c=x=y"]) == {"a": {"b": "1"}, "c": "x=y"}


@pytest.mark.parametrize("bad", ["novalue", "a..b=1", "=3"])
def test_malformed_overrides(bad):
    with pytest.raises(ConfigError, match="override"):
        parse_overrides([bad])


def test_override_values_take_the_declared_type():
    raw = merge({"required": "r"}, parse_overrides(
        ["inner.rate=3e-4", "inner.steps=7", "inner.name=3e-4", "inner.flag=true", "inner.mode=b",
         "inner.tags=[p, q]", "inner.limit=null"]))
    cfg = from_dict(Outer, raw)
    assert cfg.inner.rate == pytest.approx(3e-4) and isinstance(cfg.inner.rate, float)
    assert cfg.inner.steps == 7
    assert cfg.inner.name == "3e-4"  # a string field keeps the text
    assert cfg.inner.flag is True and cfg.inner.mode == "b" and cfg.inner.tags == ["p", "q"]
    assert cfg.inner.limit is None


def test_yaml_strings_for_floats_are_coerced():
    assert from_dict(Outer, {"required": "r", "inner": {"rate": "1e-5"}}).inner.rate == pytest.approx(1e-5)


@pytest.mark.parametrize("data, message", [
    ({}, "required: required"),
    ({"required": "r", "inner": {"stpes": 3}}, "inner.stpes: unknown key (did you mean 'steps'?)"),
    ({"required": "r", "inner": {"steps": "many"}}, "inner.steps: expected an integer, got 'many'"),
    ({"required": "r", "inner": {"flag": "yes please"}}, "inner.flag: expected true or false"),
    ({"required": "r", "inner": {"mode": "c"}}, "inner.mode: expected one of 'a', 'b'"),
    ({"required": "r", "inner": {"tags": "solo"}}, "inner.tags: expected a list"),
    ({"required": "r", "inner": 5}, "inner: expected a mapping"),
    ({"required": 3}, "required: expected a string"),
])
def test_errors_name_the_key_path(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data)
    assert message in str(err.value)


@dataclass
class WithPlugins:
    reward: PluginSpec | None = plugin_field("reward", default=None)
    sets: list[PluginSpec] = plugin_field("dataset", default_factory=list)


def test_plugin_blocks_validate_against_the_plugins_config():
    seen = []

    def resolver(kind, name, path):
        seen.append((kind, name, path))
        if name == "missing":
            raise ConfigError(f"{path}.name: unknown {kind} 'missing'")
        return Inner

    cfg = from_dict(WithPlugins, {"reward": {"name": "r1", "rate": 0.5}, "sets": ["d1", {"name": "d2", "steps": 2}]},
                    resolver=resolver)
    assert cfg.reward.name == "r1" and cfg.reward.options.rate == 0.5
    assert [s.options.steps for s in cfg.sets] == [10, 2]
    assert seen == [("reward", "r1", "reward"), ("dataset", "d1", "sets[0]"), ("dataset", "d2", "sets[1]")]
    with pytest.raises(ConfigError, match=r"sets\[0\].bogus: unknown key"):
        from_dict(WithPlugins, {"sets": [{"name": "d", "bogus": 1}]}, resolver=resolver)
    with pytest.raises(ConfigError, match="reward.name: unknown reward 'missing'"):
        from_dict(WithPlugins, {"reward": "missing"}, resolver=resolver)
    assert to_dict(cfg)["reward"] == {"name": "r1", **to_dict(Inner(rate=0.5))}


def test_a_list_item_is_overridable_by_its_index(tmp_path):
    from typer.testing import CliRunner

    from realm_cli.cli import build_app
    from realm_cli.recipes import recipe as recipes

    recipe = recipes.load("cpu-minilm", ["data.train[0].limit=200", "data.train[0].subset=harmless-base"])
    assert recipe.data.train[0].options.limit == 200 and recipe.data.train[0].options.subset == "harmless-base"
    with pytest.raises(RealmError, match=r"data\.train\[3\]: the list has 1 item \(indices from 0\)"):
        recipes.load("cpu-minilm", ["data.train[3].limit=200"])
    with pytest.raises(RealmError, match=r"data\.train\[0\]\.limt: unknown key \(did you mean 'limit'"):
        recipes.load("cpu-minilm", ["data.train[0].limt=1"])
    with pytest.raises(RealmError, match=r"trainer: \[index\] overrides need a list"):
        recipes.load("cpu-minilm", ["trainer[0].x=1"])
    # the error line keeps its brackets on the terminal too (rich would read [index] as markup)
    result = CliRunner().invoke(build_app(), ["recipes", "validate", "cpu-minilm", "trainer[0].x=1"])
    assert result.exit_code == 2 and "[index] overrides" in result.output
