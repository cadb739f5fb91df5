"""A wheel install must carry the recipes, launch configs and built-in plugins, not only an editable checkout."""

import configparser
import subprocess
import sys
import zipfile

import pytest

from support.shared import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)
    return next(out.glob("realm_cli-*.whl"))


def test_wheel_ships_data_and_plugins(wheel):
    """Every file of the two packages (code, recipes, launch configs) is in the wheel: folder names are import names."""
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p for package in ("realm_cli", "realm_plugins") for p in (REPO / package).rglob("*")
               if p.suffix in (".py", ".yaml", ".json") and "__pycache__" not in p.parts]
    assert any(p.suffix == ".yaml" for p in shipped) and any(p.suffix == ".json" for p in shipped)
    for path in shipped:
        assert path.relative_to(REPO).as_posix() in names, f"{path.relative_to(REPO)} missing from the wheel"


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
