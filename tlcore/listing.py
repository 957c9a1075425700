"""What is installed: the plugins, the frameworks and their steps, the order plugins are asked.

``tl plugins list`` prints it; ``tlcore.list_plugins()`` returns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.calls import Hooks
from tlcore.config import plugin_config_keys
from tlcore.frameworks import DEFAULT_FRAMEWORK, STEPS
from tlcore.pluginmanager import installed_plugins_disabled
from tlcore.registry import registered_frameworks
from tlcore.run import ANSWER_HOOKS

if TYPE_CHECKING:
    from tlcore.pluginmanager import PluginManager


def describe(manager: PluginManager, hook_name: str | None = None) -> dict[str, Any]:
    """``{"plugins", "frameworks", "call_order", "installed_plugins_disabled"}`` of ``manager``: every plugin
    (or, with ``hook_name``, those implementing that hook, in call order)."""
    infos = manager.describe()
    hooks: Any = ANSWER_HOOKS
    if hook_name:
        asked = manager.call_order(hook_name)
        infos = sorted((i for i in infos if i.name in asked), key=lambda i: asked.index(i.name))
        hooks = [hook for hook in ANSWER_HOOKS if hook == hook_name]
    errors: dict[str, str] = {}
    records = _records(manager, infos, errors)
    frameworks = _framework_records(manager, errors)
    for record in records:
        record["error"] = record["error"] or errors.get(record["name"])
    return {"plugins": records, "frameworks": frameworks, "call_order": _call_order(manager, frameworks, hooks),
            "installed_plugins_disabled": installed_plugins_disabled()}


def _key_record(key: Any) -> dict[str, Any]:
    return {"name": key.name, "type": key.type, "required": key.required,
            "default": None if key.required else key.default, "help": key.help, "summary": key.describe()}


def _records(manager: PluginManager, infos: Any, errors: dict[str, str]) -> list[dict[str, Any]]:
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


def _framework_records(manager: PluginManager, errors: dict[str, str]) -> list[dict[str, Any]]:
    """Each framework: who declares it, which plugins serve it, and which steps it has (and lacks)."""
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


def _call_order(manager: PluginManager, frameworks: list[dict[str, Any]], hooks: Any) -> dict[str, list[str]]:
    """Per hook, the plugins asked: for framework steps, per framework (``"tl_train [keras]"``)."""
    declared = registered_frameworks(manager, errors={})
    order: dict[str, list[str]] = {}
    for hook in hooks:
        if hook in STEPS:
            for framework in frameworks:
                order[f'{hook} [{framework["name"]}]'] = Hooks(manager, declared[framework["name"]][0]).order(hook)
        else:
            order[hook] = manager.call_order(hook)
    return order
