"""``tl plugins``: what is installed, what it implements, which frameworks it serves, in which order it is asked."""

from __future__ import annotations

import json
from typing import Any, Sequence

import click

from tlcore.pluginmanager import DISABLE_ENV, PluginManager


def builtin_plugins() -> tuple[str, ...]:
    """Module names of the built-in plugins."""
    from tlplugins import BUILTIN_PLUGINS

    return tuple(BUILTIN_PLUGINS)


def load_plugins(blocked: Sequence[str] = (), extra: Sequence[str] = ()) -> PluginManager:
    from tlcore.pluginmanager import make_plugin_manager

    return make_plugin_manager(builtin_plugins(), blocked=blocked, extra=extra)


plugin_option = click.option(
    "-p", "--plugin", "extra", multiple=True, metavar="MODULE",
    help="Also load the plugin module MODULE (importable name; repeatable), e.g. while writing one.",
)


@click.group()
def plugins() -> None:
    """See the plugins tl has found."""


def _source(record: dict[str, Any]) -> str:
    if record["builtin"]:
        return "built-in"
    if record["distribution"]:
        return f'{record["distribution"]} {record["version"] or ""}'.strip()
    return "-p " + record["module"]


def _print_table(records: list[dict[str, Any]], frameworks: list[dict[str, Any]],
                 order: dict[str, list[str]] | None) -> None:
    rows = [("NAME", "FROM", "FRAMEWORK", "HOOKS")]
    for record in records:
        if record["blocked"]:
            hooks = "(blocked)"
        elif record["error"]:
            hooks = f'FAILED TO LOAD: {record["error"]}'
        else:
            hooks = ", ".join(record["hooks"])
        served = ", ".join(record["frameworks"]) if record["frameworks"] else "any"
        rows.append((record["name"], _source(record), served, hooks))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    if frameworks:
        click.echo('\nFrameworks (configuration key "framework"):')
        for framework in frameworks:
            default = " (default)" if framework["default"] else ""
            click.echo(f'  {framework["name"]}{default}: {framework["summary"]}')
            steps = ", ".join(step.removeprefix("tl_") for step in framework["steps"])
            click.echo(f"    steps: {steps}")
            if framework["missing_steps"]:
                click.echo(f'    cannot: {", ".join(step.removeprefix("tl_") for step in framework["missing_steps"])}')
            if not framework["installed"]:
                click.echo(f'    not installed: {framework["install"]}')
    if order:
        click.echo("\nFirst answer wins; plugins are asked in this order:")
        for hook, names in order.items():
            click.echo(f"  {hook}: {' > '.join(names) if names else '(no plugin)'}")
    keyed = [record for record in records if record["config_keys"]]
    if keyed:
        click.echo("\nConfiguration keys added by plugins:")
        for record in keyed:
            for key in record["config_keys"]:
                click.echo(f'  {key["name"]} ({record["name"]}): {key["summary"]}. {key["help"]}')


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--hook", "hook_name", metavar="NAME", help="Only plugins implementing this hook, in call order.")
@plugin_option
def list_plugins(as_json: bool, hook_name: str | None, extra: Sequence[str]) -> None:
    """List every plugin, the frameworks and their steps, and the configuration keys plugins add."""
    from tlcore.listing import describe

    manager = load_plugins(extra=extra)
    if hook_name and hook_name not in manager.hook_names():
        known = manager.hook_names()
        raise click.BadParameter(f"{hook_name!r} is not a tl hook; hooks: {', '.join(known)}", param_hint="--hook")
    listing = describe(manager, hook_name)
    if as_json:
        click.echo(json.dumps(listing, indent=2))
    else:
        _print_table(listing["plugins"], [] if hook_name else listing["frameworks"], listing["call_order"])
        if listing["installed_plugins_disabled"]:
            click.echo(f"\nInstalled plugins are disabled ({DISABLE_ENV} is set): only built-ins and -p modules are listed.")
