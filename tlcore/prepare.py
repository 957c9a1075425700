"""Before a run: load the plugins, select the framework, read and check the configuration.

The order matters: which plugins to load (``block_plugins``) and which framework's
keys apply (``framework``) are read from the file first; then the plugins declare
their keys, and the whole configuration is checked with the keys of the selected
framework's plugins and the framework-neutral ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tlcore.config import ConfigKey, RunConfig, load_config, plugin_config_keys, read_configuration, read_selection
from tlcore.errors import PluginError
from tlcore.frameworks import Framework, serves
from tlcore.pluginmanager import PluginManager, installed_plugins_disabled, make_plugin_manager
from tlcore.registry import base_model_of, framework_of, registered_frameworks


@dataclass
class Prepared:
    """A run ready to start: its plugins, configuration, framework, and warnings to show once output starts."""

    manager: PluginManager
    config: RunConfig
    framework: Framework
    notes: list[str] = field(default_factory=list)


def load_plugins(builtins: Sequence[str] | None, blocked: Sequence[str], configured: Sequence[str],
                 extra: Sequence[str], plugins: Sequence[Any] = ()) -> tuple[PluginManager, list[str]]:
    """A plugin manager without the ``blocked`` (``--block``) and ``configured`` (``block_plugins``) plugins,
    with ``plugins`` (objects or modules) registered last; a broken plugin or an unknown ``--block`` name is
    an error. Also returns warnings to show."""
    manager = make_plugin_manager(builtins, blocked=(*blocked, *configured), extra=extra, objects=plugins)
    notes = []
    for names, where, strict in ((blocked, "--block", not installed_plugins_disabled()),
                                 (configured, '"block_plugins" in the configuration:', False)):
        for name in sorted(set(names) - set(manager.infos)):
            if strict:
                raise PluginError(f"{where} {name}: no plugin has this name; `tl plugins list` shows the names")
            notes.append(f"{where} {name}: no plugin has this name (not installed?); nothing to block")
    for info in manager.failures:
        raise PluginError(f'plugin "{info.name}" cannot be used ({info.error}); {info.remedy}')
    return manager, notes


def framework_keys(manager: PluginManager, framework_name: str) -> tuple[list[ConfigKey], dict[str, list[str]]]:
    """The configuration keys the plugins of framework ``framework_name`` (and the framework-neutral ones) declare,
    and ``{key: frameworks}`` of those only other frameworks' plugins declare."""
    keys: list[ConfigKey] = []
    foreign: dict[str, list[str]] = {}
    for plugin, declared in plugin_config_keys(manager).items():
        served = manager.frameworks_of(plugin)
        if serves(served, framework_name):
            keys.extend(declared)
        else:
            for key in declared:
                owners = foreign.setdefault(key.name, [])
                owners.extend(name for name in served or () if name not in owners)
    return keys, foreign


def prepare(configuration: str | Path | Mapping[str, Any], builtins: Sequence[str] | None, blocked: Sequence[str] = (),
            extra: Sequence[str] = (), overrides: Mapping[str, Any] | None = None,
            plugins: Sequence[Any] = ()) -> Prepared:
    """Load the plugins (minus blocked ones), then read and check ``configuration`` with their keys.

    :param configuration: configuration.json's path, or the configuration as a dict.
    :param builtins: module names of the built-in plugins (``None``: tl's own, as the command line finds them).
    :param blocked: plugin names not to load (``--block``), besides the configuration's ``block_plugins``.
    :param extra: module names to load as plugins (``-p MODULE``).
    :param overrides: key -> value replacing the configuration's (``--set``), checked like them.
    :param plugins: plugin objects (or modules) to register for this run only.
    """
    read = read_configuration(configuration, overrides)
    configured, framework_name = read_selection(read)
    manager, notes = load_plugins(builtins, blocked, configured, extra, plugins)
    frameworks = registered_frameworks(manager)
    keys, foreign = framework_keys(manager, framework_name)
    # With plugins blocked or disabled, keys only they declare are expected: ignored, not refused.
    lenient = bool(manager.blocked_names) or installed_plugins_disabled()
    config = load_config(read, plugin_keys=keys, ignore_unknown=lenient, foreign_keys=foreign,
                         frameworks=frameworks)
    framework = framework_of(config, manager)
    base_model_of(config, manager, framework)  # an unknown or misused base_model is refused before anything starts
    notes += [f'configuration key "{key}" is not used by any loaded plugin (a blocked or disabled plugin may use it)'
              for key in config.ignored_keys]
    return Prepared(manager, config, framework, notes)
