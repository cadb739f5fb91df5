"""Register the recipe files shipped with realm: ``<command group>/<name>.yaml`` beside this module."""

from importlib import resources

import yaml

from realm_cli.hookspecs import hookimpl


def _yaml_files(folder):
    for path in folder.iterdir():
        if path.is_dir():
            yield from _yaml_files(path)
        elif path.name.endswith(".yaml"):
            yield path


@hookimpl
def register_recipes(register):
    for path in sorted(_yaml_files(resources.files("realm_plugins.recipes")), key=lambda p: p.name):
        try:
            description = (yaml.safe_load(path.read_text()) or {}).get("description", "")
        except (yaml.YAMLError, AttributeError):
            description = "(unreadable: see `realm recipes validate`)"
        register(path.name[: -len(".yaml")], path, description=str(description))
