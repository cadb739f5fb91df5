"""The house as the README draws it: every room exists, plugins implement the contracts, imports flow one way."""

from __future__ import annotations

import ast

import pytest

from realm_cli import contracts
from support.shared import REPO

README = (REPO / "README.md").read_text()
MAX_LINES = 350


def architecture_block() -> str:
    section = README[README.index("## Architecture"):]
    return section.split("```text\n", 1)[1].split("```", 1)[0]


def named_paths() -> list[str]:
    """The paths the tree names: each top-level folder, and the entries (indented two spaces) under realm_cli/ and
    realm_plugins/; deeper-indented lines continue a description."""
    paths, parent = [], None
    for line in architecture_block().splitlines():
        indent = len(line) - len(line.lstrip(" "))
        entry = line.strip().split("  ", 1)[0]
        names = [n.rstrip(",/") for n in entry.split()]
        if indent == 0 and names:
            parent = names[0]
            paths.append(parent)
        elif indent == 2 and parent in ("realm_cli", "realm_plugins"):
            paths += [f"{parent}/{n}" for n in names]
    return paths


def modules():
    for package in ("realm_cli", "realm_plugins"):
        yield from sorted((REPO / package).rglob("*.py"))


def test_every_room_the_readme_names_exists_and_every_room_is_named():
    paths = named_paths()
    assert "realm_cli/rewards" in paths and "realm_plugins/recipes" in paths, paths
    for path in paths:
        assert (REPO / path).exists() or (REPO / f"{path}.py").exists(), f"README names {path}, which does not exist"
    rooms = {p.relative_to(REPO).as_posix() for p in (REPO / "realm_cli").iterdir()
             if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms <= set(paths), f"subpackages missing from the README's architecture: {rooms - set(paths)}"


def test_contracts_export_every_type_a_builtin_plugin_implements():
    from realm_cli import plugins

    assert all(hasattr(contracts, name) for name in contracts.__all__)
    bases = {"reward": contracts.Reward, "dataset": contracts.DatasetSource, "trainer": contracts.Job,
             "evaluator": contracts.Evaluator}
    registry = plugins.build().registry
    for kind, base in bases.items():
        entries = registry.entries(kind)
        assert entries, kind
        for entry in entries:
            assert isinstance(entry.obj, type) and issubclass(entry.obj, base), f"{kind} {entry.name}"


def _imports(path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_nothing_below_the_cli_imports_the_cli():
    offenders = [p.relative_to(REPO).as_posix() for p in modules()
                 if "cli" not in p.relative_to(REPO).parts[1:2]
                 and any(m == "realm_cli.cli" or m.startswith("realm_cli.cli.") for m in _imports(p))]
    assert not offenders


def test_contracts_import_nothing_heavy_and_nothing_of_the_rooms():
    imported = _imports(REPO / "realm_cli" / "contracts.py")
    assert not {m for m in imported if m.split(".")[0] in ("torch", "transformers", "trl", "peft")}
    assert {m for m in imported if m.startswith("realm_cli.")} <= {"realm_cli.errors", "realm_cli.errors.RealmError",
                                                                   "realm_cli.recipes.recipe",
                                                                   "realm_cli.recipes.recipe.Recipe"}


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: p.relative_to(REPO).as_posix())
def test_a_long_module_says_why_in_its_docstring(path):
    lines = len(path.read_text().splitlines())
    if lines > MAX_LINES:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "Why this module is long:" in doc, f"{lines} lines and no reason in the docstring"
