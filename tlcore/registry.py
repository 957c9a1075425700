"""The frameworks and base models the loaded plugins declare, and the ones a configuration selects, checked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from tlcore.base_models import BaseModel, registered_base_models, select_base_model
from tlcore.calls import Hooks, declarations
from tlcore.errors import ConfigError
from tlcore.frameworks import OPTIONAL_KEYS, Framework, select_framework

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.pluginmanager import PluginManager


def registered_frameworks(manager: PluginManager, errors: dict[str, str] | None = None) -> dict[str, tuple[Framework, str]]:
    """``{name: (Framework, plugin name)}`` of every framework the plugins declare.

    A plugin returning something else, or a framework declared twice, raises
    PluginError, unless ``errors`` is a dict: then the error is stored under the plugin's name.
    """
    return declarations(manager, "tl_frameworks", Framework, lambda framework: framework.name,
                        lambda framework: f'framework "{framework.name}"', errors)


def framework_of(config: RunConfig, manager: PluginManager) -> Framework:
    """The framework ``config`` selects, checked: known, installed, and given only keys it honours."""
    framework = select_framework(registered_frameworks(manager), config.framework, config.config_file.name)
    check_framework_keys(config, framework)
    framework.check_installed()
    return framework


def base_model_of(config: RunConfig, manager: PluginManager, framework: Framework) -> BaseModel | None:
    """The named base ``config`` chooses for ``framework``, checked (:func:`tlcore.base_models.select_base_model`);
    None for a model of the user's."""
    return select_base_model(config, framework, registered_base_models(manager))


def check_framework_keys(config: RunConfig, framework: Framework) -> None:
    """Refuse optional core keys that ``framework`` does not honour, when the configuration sets them."""
    for name in OPTIONAL_KEYS:
        if name in config.given_keys and name not in framework.keys and getattr(config, name) is not None:
            hint = framework.key_hints.get(name, "remove it or choose another framework")
            source = config.set_label if name in config.set_keys else config.config_file.name
            raise ConfigError(f'{source}: "{name}" does not apply to framework "{framework.name}"; {hint}')


def open_hooks(config: RunConfig, manager: PluginManager, required: Sequence[str], *, debug: bool = False) -> Hooks:
    """How every command that runs a framework begins (``tl run``, ``tl quantize`` and the SDK's, ``tl check``):
    the framework ``config`` selects, checked, its libraries quietened unless ``debug``, and the hooks of its
    plugins and the neutral ones, with ``required`` hooks answered by some plugin (else a one-line error), and the
    named base it chooses (:attr:`Hooks.base`)."""
    framework = framework_of(config, manager)
    base = base_model_of(config, manager, framework)
    framework.quieten(quiet=not debug)
    hooks = Hooks(manager, framework)
    hooks.base = base
    hooks.require(required)
    return hooks
