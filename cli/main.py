"""``tl``: transfer-learn an image classifier from a configuration file."""

import json
import logging
import os
import signal
import sys

import click

from tlcore import __version__
from tlcore.errors import PluginError, TLError
from tlcore.pluginmanager import DISABLE_ENV, make_plugin_manager

EXIT_INTERRUPTED = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


def load_plugins(blocked=(), extra=()):
    from plugins import BUILTIN_PLUGINS

    return make_plugin_manager(BUILTIN_PLUGINS, blocked=blocked, extra=extra)


plugin_option = click.option(
    "-p", "--plugin", "extra", multiple=True, metavar="MODULE",
    help="Also load the plugin module MODULE (importable name; repeatable), e.g. while writing one.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="tl")
def main():
    """Transfer-learn image classifiers: train a new head on a Keras base model.

    Start with `tl run configuration.json`; see what is installed with
    `tl plugins list`.
    """


@main.command()
@click.argument("configuration", metavar="CONFIGURATION.json")
@click.option("--block", "blocked", multiple=True, metavar="PLUGIN",
              help="Do not load this plugin for this run (repeatable); see `tl plugins list`.")
@plugin_option
@click.option("--debug", is_flag=True, help="Show full tracebacks and TensorFlow's own log messages.")
def run(configuration, blocked, extra, debug):
    """Train, save and evaluate as CONFIGURATION.json says.

    Writes output_dir/saved_model (a TensorFlow SavedModel with labels.json and
    preprocessing.json beside it) and evaluate_result_dir/results.json. Paths in
    the configuration are relative to its folder.
    """
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, _raise_terminated)
    from tlcore.config import load_config
    from tlcore.report import Reporter
    from tlcore.run import run as run_flow
    from tlcore.calls import call_all

    try:
        manager = load_plugins(blocked, extra)
        unknown = sorted(set(blocked) - set(manager.infos))
        if unknown:
            raise PluginError(f'--block {unknown[0]}: no plugin has this name; `tl plugins list` shows the names')
        for info in manager.failures:
            raise PluginError(
                f'plugin "{info.name}" cannot be used ({info.error}); uninstall it, '
                f"skip it with --block {info.name}, or set {DISABLE_ENV}=1 to load no installed plugins"
            )
        keys = [key for _, plugin_keys in call_all(manager, "tl_config_keys") for key in plugin_keys]
        config = load_config(configuration, plugin_keys=keys)
        reporter = Reporter()
        reporter.info(f"tl {__version__}: {config.config_file}")
        run_flow(config, manager, reporter)
    except Terminated:
        click.echo("\nTerminated: stopped before finishing; no output was written and earlier outputs are unchanged.", err=True)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        click.echo("\nInterrupted: stopped before finishing; no output was written and earlier outputs are unchanged.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except TLError as exc:
        if debug:
            raise
        click.echo(f"\nError: {exc}", err=True)
        sys.exit(exc.exit_code)


@main.group()
def plugins():
    """See the plugins tl has found."""


def _plugin_record(manager, info):
    return {
        "name": info.name,
        "module": info.module,
        "distribution": info.distribution,
        "version": info.version,
        "builtin": info.builtin,
        "blocked": info.blocked,
        "error": info.error,
        "hooks": info.hooks,
    }


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--hook", "hook_name", metavar="NAME", help="Only plugins implementing this hook, in call order.")
@plugin_option
def list_plugins(as_json, hook_name, extra):
    """List every plugin: source, version and the hooks it implements."""
    from tlcore.run import ANSWER_HOOKS

    manager = load_plugins(extra=extra)
    infos = manager.describe()
    if hook_name:
        known = manager.hook_names()
        if hook_name not in known:
            raise click.BadParameter(f"{hook_name!r} is not a tl hook; hooks: {', '.join(known)}", param_hint="--hook")
        order = manager.call_order(hook_name)
        infos = sorted((i for i in infos if i.name in order), key=lambda i: order.index(i.name))
    records = [_plugin_record(manager, info) for info in infos]
    order = {hook: manager.call_order(hook) for hook in ANSWER_HOOKS if not hook_name or hook == hook_name}
    if as_json:
        click.echo(json.dumps({"plugins": records, "call_order": order}, indent=2))
        return
    rows = [("NAME", "FROM", "HOOKS")]
    for record in records:
        source = "built-in" if record["builtin"] else f'{record["distribution"] or "?"} {record["version"] or ""}'.strip()
        if record["blocked"]:
            hooks = "(blocked)"
        elif record["error"]:
            hooks = f'FAILED TO LOAD: {record["error"]}'
        else:
            hooks = ", ".join(record["hooks"])
        rows.append((record["name"], source, hooks))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
    click.echo("\nFirst answer wins; plugins are asked in this order:")
    for hook, names in order.items():
        click.echo(f"  {hook}: {' > '.join(names) if names else '(no plugin)'}")
