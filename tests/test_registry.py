import pytest

from realm_cli.errors import RealmError
from realm_cli.plugins import DuplicateNameError, Registry, UnknownNameError


class Thing:
    """A thing.

    More text that is not the description."""


def test_records_plugin_and_description():
    reg = Registry()
    entry = reg.add("reward", "thing", Thing, plugin="pkg.mod", distribution="pkg", version="1.2")
    assert (entry.plugin, entry.distribution, entry.version, entry.description) == ("pkg.mod", "pkg", "1.2", "A thing.")
    assert reg.get("reward", "thing").obj is Thing


def test_duplicate_name_names_both_plugins():
    reg = Registry()
    reg.add("dataset", "hh", Thing, plugin="first.mod", distribution="first-dist")
    with pytest.raises(DuplicateNameError) as err:
        reg.add("dataset", "hh", Thing, plugin="second.mod", distribution="second-dist")
    assert "first.mod" in str(err.value) and "second.mod" in str(err.value)
    assert isinstance(err.value, RealmError)


def test_same_name_in_other_kind_is_fine():
    reg = Registry()
    reg.add("trainer", "bt", Thing, plugin="a")
    reg.add("reward", "bt", Thing, plugin="a")
    assert reg.names("trainer") == reg.names("reward") == ["bt"]


def test_unknown_name_lists_close_matches():
    reg = Registry()
    for name in ("embedding", "ensemble", "nim"):
        reg.add("reward", name, Thing, plugin="p")
    with pytest.raises(UnknownNameError, match="did you mean 'embedding'"):
        reg.get("reward", "embeding")
    with pytest.raises(UnknownNameError, match="known: embedding, ensemble, nim"):
        reg.get("reward", "zzz")
