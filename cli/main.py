"""``tl``: transfer-learn an image classifier from a configuration file."""

import logging
import os
import signal
import sys

import click

from tlcore import __version__
from tlcore.calls import describe_exception
from tlcore.errors import PluginError, TLError, one_line
from tlcore.pluginmanager import DISABLE_ENV

from cli.plugins import load_plugins, plugin_option, plugins

EXIT_INTERRUPTED = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


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
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
    from tlcore.report import Reporter
    from tlcore.run import run as run_flow

    status = {}
    try:
        manager, config = _prepare(configuration, blocked, extra)
        reporter = Reporter()
        _header(reporter, config, manager)
        run_flow(config, manager, reporter, status)
    except KeyboardInterrupt as stop:
        word, code = ("Terminated", 128 + signal.SIGTERM) if isinstance(stop, Terminated) else ("Interrupted", EXIT_INTERRUPTED)
        if status.get("outputs_written"):
            click.echo(f"\n{word} after the outputs were written: saved_model and results.json are complete.", err=True)
        else:
            click.echo(f"\n{word}: stopped before finishing; no output was written and earlier outputs are unchanged.",
                       err=True)
        sys.exit(code)
    except TLError as exc:
        if debug:
            raise
        click.echo(f"\nError: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug in tl itself: still one line, the traceback on request
        if debug:
            raise
        click.echo(f"\nError: unexpected {one_line(describe_exception(exc))}; run again with --debug for the "
                   "traceback, and please report it", err=True)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def _prepare(configuration, blocked, extra):
    """Load the plugins (minus blocked ones), then read and check the configuration with their keys."""
    from tlcore.config import blocked_plugins, load_config, plugin_config_keys

    configured = blocked_plugins(configuration)
    manager = load_plugins((*blocked, *configured), extra)
    for names, where in ((blocked, "--block"), (configured, '"block_plugins" in configuration.json:')):
        unknown = sorted(set(names) - set(manager.infos))
        if unknown:
            raise PluginError(f"{where} {unknown[0]}: no plugin has this name; `tl plugins list` shows the names")
    for info in manager.failures:
        raise PluginError(
            f'plugin "{info.name}" cannot be used ({info.error}); uninstall it, '
            f"skip it with --block {info.name}, or set {DISABLE_ENV}=1 to load no installed plugins"
        )
    keys = [key for plugin_keys in plugin_config_keys(manager).values() for key in plugin_keys]
    return manager, load_config(configuration, plugin_keys=keys)


def _header(reporter, config, manager):
    """Like pytest's header: the version, the configuration, and plugins that are not the built-ins."""
    reporter.info(f"tl {__version__}: {config.config_file}")
    added = [info for info in manager.describe() if not info.builtin and not info.blocked]
    if added:
        reporter.info("Plugins: " + ", ".join(
            f"{info.name} ({info.distribution} {info.version})" if info.distribution else info.name for info in added
        ))
    if manager.blocked_names:
        reporter.info("Blocked: " + ", ".join(sorted(manager.blocked_names)))


main.add_command(plugins)
