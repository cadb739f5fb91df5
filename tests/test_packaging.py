"""A wheel install must carry the recipes, launch configs and built-in plugins, not only an editable checkout."""

import configparser
import shutil
import subprocess
import sys
import zipfile

import pytest

from support.shared import REPO


def tracked_files():
    listing = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], check=True, capture_output=True, text=True)
    return [name for name in listing.stdout.split("\0") if name]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Built from a copy of the tracked sources: setuptools builds in-tree (build/, *.egg-info), and xdist may run
    this module's tests on both workers at once, two builds racing in one checkout (a CI failure)."""
    source = tmp_path_factory.mktemp("source")
    for name in tracked_files():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(out), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    return next(out.glob("realm_cli-*.whl"))


def test_wheel_ships_data_and_plugins(wheel):
    """Every file of the two packages (code, recipes, launch configs) is in the wheel: folder names are import names."""
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [name for name in tracked_files() if name.split("/")[0] in ("realm_cli", "realm_plugins")
               and name.endswith((".py", ".yaml", ".json"))]
    assert any(n.endswith(".yaml") for n in shipped) and any(n.endswith(".json") for n in shipped)
    for name in shipped:
        assert name in names, f"{name} missing from the wheel"


def test_wheel_entry_points_list_every_builtin_plugin(wheel):
    archive = zipfile.ZipFile(wheel)
    text = archive.read(next(n for n in archive.namelist() if n.endswith("entry_points.txt"))).decode()
    parser = configparser.ConfigParser()
    parser.read_string(text)
    modules = set(parser["realm"].values())
    assert parser["console_scripts"]["realm"] == "realm_cli.cli:main"
    with_hooks = {"realm_plugins." + p.relative_to(REPO / "realm_plugins").with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
                  for p in (REPO / "realm_plugins").rglob("*.py") if "@hookimpl" in p.read_text()}
    assert with_hooks == modules, "every plugin module with hooks must be an entry point (and only those)"
