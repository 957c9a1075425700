"""``tl plugins``: what is installed, what it implements, which frameworks it serves, in which order it is asked."""

import json

import click

from tlcore.config import plugin_config_keys
from tlcore.pluginmanager import DISABLE_ENV, installed_plugins_disabled


def builtin_plugins():
    """Module names of the built-in plugins."""
    from plugins import BUILTIN_PLUGINS

    return BUILTIN_PLUGINS


def load_plugins(blocked=(), extra=()):
    from tlcore.pluginmanager import make_plugin_manager

    return make_plugin_manager(builtin_plugins(), blocked=blocked, extra=extra)


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


def _records(manager, infos, errors):
    keys = plugin_config_keys(manager, errors=errors)
    return [{
        "name": info.name,
        "module": info.module,
        "distribution": info.distribution,
        "version": info.version,
        "builtin": info.builtin,
        "blocked": info.blocked,
        "error": info.error or errors.get(info.name),
        "frameworks": list(info.frameworks) if info.frameworks is not None else None,
        "hooks": info.hooks,
        "config_keys": [_key_record(key) for key in keys.get(info.name, ())],
    } for info in infos]


def _framework_records(manager, errors):
    """Each framework: who declares it, which plugins serve it, and which steps it has (and lacks)."""
    from tlcore.calls import Hooks
    from tlcore.frameworks import DEFAULT_FRAMEWORK, STEPS, registered_frameworks

    records = []
    for name, (framework, declared_by) in sorted(registered_frameworks(manager, errors=errors).items()):
        hooks = Hooks(manager, framework)
        steps = {step: hooks.order(step) for step in STEPS}
        served = [info.name for info in manager.describe()
                  if info.frameworks is not None and name in info.frameworks and not info.blocked and not info.error]
        records.append({
            "name": name,
            "default": name == DEFAULT_FRAMEWORK,
            "summary": framework.summary,
            "declared_by": declared_by,
            "plugins": served,
            "installed": not framework.missing_modules(),
            "install": framework.install if framework.missing_modules() else None,
            "model_format": framework.model_format,
            "default_preprocessing": framework.default_preprocessing,
            "layout": framework.layout,
            "keys": list(framework.keys),
            "steps": {step: names for step, names in steps.items() if names},
            "missing_steps": [step for step, names in steps.items() if not names],
        })
    return records


def _source(record):
    if record["builtin"]:
        return "built-in"
    if record["distribution"]:
        return f'{record["distribution"]} {record["version"] or ""}'.strip()
    return "-p " + record["module"]


def _print_table(records, frameworks, order):
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


def _call_order(manager, frameworks, hooks):
    """Per hook, the plugins asked: for framework steps, per framework (``"tl_train [keras]"``)."""
    from tlcore.calls import Hooks
    from tlcore.frameworks import STEPS, registered_frameworks

    declared = registered_frameworks(manager, errors={})
    order = {}
    for hook in hooks:
        if hook in STEPS:
            for framework in frameworks:
                order[f'{hook} [{framework["name"]}]'] = Hooks(manager, declared[framework["name"]][0]).order(hook)
        else:
            order[hook] = manager.call_order(hook)
    return order


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--hook", "hook_name", metavar="NAME", help="Only plugins implementing this hook, in call order.")
@plugin_option
def list_plugins(as_json, hook_name, extra):
    """List every plugin, the frameworks and their steps, and the configuration keys plugins add."""
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
    errors = {}
    records = _records(manager, infos, errors)
    frameworks = _framework_records(manager, errors)
    for record in records:
        record["error"] = record["error"] or errors.get(record["name"])
    order = _call_order(manager, frameworks, hooks)
    disabled = installed_plugins_disabled()
    if as_json:
        click.echo(json.dumps({"plugins": records, "frameworks": frameworks, "call_order": order,
                               "installed_plugins_disabled": disabled}, indent=2))
    else:
        _print_table(records, [] if hook_name else frameworks, order)
        if disabled:
            click.echo(f"\nInstalled plugins are disabled ({DISABLE_ENV} is set): only built-ins and -p modules are listed.")
