"""``tl config``: help with configuration.json (its JSON Schema, for editors)."""

import json

import click

from tlcli.plugins import builtin_plugins, plugin_option


@click.group()
def config():
    """Help with configuration.json."""


@config.command("schema")
@plugin_option
def schema(extra):
    """Print a JSON Schema of every configuration key (plugins' keys included), for editors.

    \b
    Save it and name it in configuration.json (tl ignores the "$schema" key):
      tl config schema > tl.schema.json
      {"$schema": "./tl.schema.json", "dataset_training_dir": ...}
    VS Code, PyCharm and other editors then complete the keys and check the values.
    The schema describes the plugins installed now: make it again after installing one.
    """
    from tlcli.main import guarded
    from tlcore.pluginmanager import make_plugin_manager
    from tlcore.schema import json_schema

    with guarded(False, "the schema"):
        click.echo(json.dumps(json_schema(make_plugin_manager(builtin_plugins(), extra=extra)), indent=2,
                              ensure_ascii=False))
