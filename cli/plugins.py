"""``tl plugins``: what is installed, what it implements, in which order it is asked."""

import json

import click

from tlcore.config import plugin_config_keys
from tlcore.pluginmanager import DISABLE_ENV, installed_plugins_disabled


def load_plugins(blocked=(), extra=()):
    from plugins import BUILTIN_PLUGINS
    from tlcore.pluginmanager import make_plugin_manager

    return make_plugin_manager(BUILTIN_PLUGINS, blocked=blocked, extra=extra)


plugin_option = click.option(
    "-p", "--plugin", "extra", multiple=True, metavar="MODULE",
    help="Also load the plugin module MODULE (importable name; repeatable), e.g. while writing one.",
)


@click.group()
def plugins():
    """See the plugins tl has found."""


def _key_record(key):
    return {"name": key.name, "type": key.type, "required": key.required,
            "default": None if key.required else key.default, "help": key.help, "summary": key.describe()}


def _records(manager, infos):
    errors = {}
    keys = plugin_config_keys(manager, errors=errors)
    records = []
    for info in infos:
        records.append({
            "name": info.name,
            "module": info.module,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "blocked": info.blocked,
            "error": info.error or errors.get(info.name),
            "hooks": info.hooks,
            "config_keys": [_key_record(key) for key in keys.get(info.name, ())],
        })
    return records


def _source(record):
    if record["builtin"]:
        return "built-in"
    if record["distribution"]:
        return f'{record["distribution"]} {record["version"] or ""}'.strip()
    return "-p " + record["module"]


def _print_table(records, order):
    rows = [("NAME", "FROM", "HOOKS")]
    for record in records:
        if record["blocked"]:
            hooks = "(blocked)"
        elif record["error"]:
            hooks = f'FAILED TO LOAD: {record["error"]}'
        else:
            hooks = ", ".join(record["hooks"])
        rows.append((record["name"], _source(record), hooks))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
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
def list_plugins(as_json, hook_name, extra):
    """List every plugin: source, version, hooks, and configuration keys it adds."""
    from tlcore.run import ANSWER_HOOKS

    manager = load_plugins(extra=extra)
    infos = manager.describe()
    hooks = ANSWER_HOOKS
    if hook_name:
        known = manager.hook_names()
        if hook_name not in known:
            raise click.BadParameter(f"{hook_name!r} is not a tl hook; hooks: {', '.join(known)}", param_hint="--hook")
        asked = manager.call_order(hook_name)
        infos = sorted((i for i in infos if i.name in asked), key=lambda i: asked.index(i.name))
        hooks = [hook for hook in ANSWER_HOOKS if hook == hook_name]
    records = _records(manager, infos)
    order = {hook: manager.call_order(hook) for hook in hooks}
    disabled = installed_plugins_disabled()
    if as_json:
        click.echo(json.dumps({"plugins": records, "call_order": order, "installed_plugins_disabled": disabled},
                              indent=2))
    else:
        _print_table(records, order)
        if disabled:
            click.echo(f"\nInstalled plugins are disabled ({DISABLE_ENV} is set): only built-ins and -p modules are listed.")
