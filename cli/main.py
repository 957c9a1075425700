"""``tl``: transfer-learn an image classifier from a configuration file."""

import logging
import os
import signal
import sys

import click

from tlcore import __version__
from tlcore.calls import describe_exception
from tlcore.errors import PluginError, TLError, one_line
from tlcore.pluginmanager import DISABLE_ENV, installed_plugins_disabled

from cli.plugins import load_plugins, plugin_option, plugins

EXIT_INTERRUPTED = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _fresh_line():
    """On a terminal, end a progress line drawn in place before a message (elsewhere nothing is needed)."""
    return "\n" if sys.stderr.isatty() else ""


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
    previous_handlers = {signal.SIGINT: signal.getsignal(signal.SIGINT),
                         signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated)}
    from tlcore.report import Reporter
    from tlcore.run import run as run_flow

    status = {}
    try:
        manager, config, notes = _prepare(configuration, blocked, extra)
        reporter = Reporter()
        _header(reporter, config, manager)
        for note in notes:
            reporter.warning(note)
        run_flow(config, manager, reporter, status)
        for signum in (signal.SIGINT, signal.SIGTERM):  # done: a late Ctrl-C must not turn success into failure
            signal.signal(signum, signal.SIG_IGN)
    except KeyboardInterrupt as stop:
        word, code = ("Terminated", 128 + signal.SIGTERM) if isinstance(stop, Terminated) else ("Interrupted", EXIT_INTERRUPTED)
        if status.get("outputs_written"):
            click.echo(f"{_fresh_line()}{word} after the outputs were written: saved_model and results.json are complete.", err=True)
        else:
            click.echo(f"{_fresh_line()}{word}: stopped before finishing; no output was written and earlier outputs are unchanged.",
                       err=True)
        sys.exit(code)
    except TLError as exc:
        if debug:
            raise
        click.echo(f"{_fresh_line()}Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug in tl itself: still one line, the traceback on request
        if debug:
            raise
        click.echo(f"{_fresh_line()}Error: unexpected {one_line(describe_exception(exc))}; run again with --debug for the "
                   "traceback, and please report it", err=True)
        sys.exit(1)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def _prepare(configuration, blocked, extra):
    """Load the plugins (minus blocked ones), then read and check the configuration with their keys.

    Returns the manager, the configuration and warnings to show once output starts.
    """
    from tlcore.config import blocked_plugins, load_config, plugin_config_keys

    configured = blocked_plugins(configuration)
    manager = load_plugins((*blocked, *configured), extra)
    notes = []
    for names, where, strict in ((blocked, "--block", not installed_plugins_disabled()),
                                 (configured, '"block_plugins" in the configuration:', False)):
        for name in sorted(set(names) - set(manager.infos)):
            if strict:
                raise PluginError(f"{where} {name}: no plugin has this name; `tl plugins list` shows the names")
            notes.append(f"{where} {name}: no plugin has this name (not installed?); nothing to block")
    for info in manager.failures:
        raise PluginError(f'plugin "{info.name}" cannot be used ({info.error}); {info.remedy}')
    keys = [key for plugin_keys in plugin_config_keys(manager).values() for key in plugin_keys]
    # With plugins blocked or disabled, keys only they declare are expected: ignored, not refused.
    lenient = bool(manager.blocked_names) or installed_plugins_disabled()
    config = load_config(configuration, plugin_keys=keys, ignore_unknown=lenient)
    notes += [f'configuration key "{key}" is not used by any loaded plugin (a blocked or disabled plugin may use it)'
              for key in config.ignored_keys]
    return manager, config, notes


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
    if installed_plugins_disabled():
        reporter.info(f"Installed plugins are disabled ({DISABLE_ENV} is set)")


main.add_command(plugins)
