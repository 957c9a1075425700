"""``tl config``: help with configuration.json (its JSON Schema, for editors)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Sequence

import click

from tlcli.plugins import builtin_plugins, plugin_option

if TYPE_CHECKING:
    from tlcore.pluginmanager import PluginManager


def _manager(extra: Sequence[str]) -> PluginManager:
    """The plugins whose keys are described: the installed ones and ``-p MODULE``s, which must load."""
    from tlcore.errors import PluginError
    from tlcore.pluginmanager import make_plugin_manager

    manager = make_plugin_manager(builtin_plugins(), extra=extra)
    for info in manager.failures:
        if info.from_option:
            raise PluginError(f'plugin "{info.name}" cannot be used ({info.error}); {info.remedy}')
    return manager


@click.group()
def config() -> None:
    """Help with configuration.json."""


@config.command("schema")
@plugin_option
def schema(extra: Sequence[str]) -> None:
    """Print a JSON Schema of every configuration key (plugins' keys included), for editors.

    \b
    Save it and name it in configuration.json (tl ignores the "$schema" key):
      tl config schema > tl.schema.json
      {"$schema": "./tl.schema.json", "dataset_training_dir": ...}
    VS Code, PyCharm and other editors then complete the keys and check the values.
    The schema describes the plugins installed now: make it again after installing one.
    """
    from tlcore.schema import json_schema

    from tlcli.guard import guarded

    with guarded(False, "the schema"):
        click.echo(json.dumps(json_schema(_manager(extra)), indent=2, ensure_ascii=False))


@config.command("keys")
@click.option("--markdown", is_flag=True, help="A Markdown table (the documentation's key table is this).")
@plugin_option
def keys(markdown: bool, extra: Sequence[str]) -> None:
    """List every configuration key: what it does, its default, and the part of tl (or plugin) that reads it.

    \b
    The keys of the plugins installed now are included; -p MODULE adds a plugin's.
    """
    from tlcore.schema import declared_keys, markdown_table

    from tlcli.guard import guarded

    with guarded(False, "the key list"):
        manager = _manager(extra)
        if markdown:
            click.echo(markdown_table(manager), nl=False)
            return
        entries = declared_keys(manager)
        width = max(len(entry.key.name) for entry in entries)
        for entry in entries:
            click.echo(f"{entry.key.name:<{width}}  {entry.key.describe()}" + (f"  [{entry.note}]" if entry.note else ""))
            click.echo(f"{'':<{width}}  {entry.key.help}")
