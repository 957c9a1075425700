"""Calling hooks so that every result and every failure is attributed to a plugin.

Implementations are asked in pluggy's order (last registered first, shifted by
``tryfirst``/``trylast``); knowing which plugin answered lets ``tl`` say who did
what, and name the plugin when one fails.
"""

import re

from tlcore.errors import PluginError, TLError


def _implementations(manager, hook_name):
    caller = getattr(manager.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            raise PluginError(
                f'plugin "{impl.plugin_name}" wraps {hook_name}; tl hooks do not support wrappers, '
                "implement the hook directly"
            )
        yield impl


def _call(impl, hook_name, kwargs):
    try:
        return impl.function(**{name: kwargs[name] for name in impl.argnames})
    except TLError:
        raise
    except Exception as exc:
        raise PluginError(f'plugin "{impl.plugin_name}" failed in {hook_name}: {describe_exception(exc)}') from exc


def call_first(manager, hook_name, **kwargs):
    """Ask plugins in order; return ``(result, plugin_name)`` of the first non-None answer."""
    for impl in _implementations(manager, hook_name):
        result = _call(impl, hook_name, kwargs)
        if result is not None:
            return result, impl.plugin_name
    return None, None


def call_all(manager, hook_name, errors=None, **kwargs):
    """Ask every plugin; return ``[(plugin_name, result)]`` for the non-None results.

    A failing plugin raises :class:`PluginError`, unless ``errors`` is a dict: then
    its error is stored there under the plugin's name and the others are still asked.
    """
    results = []
    for impl in _implementations(manager, hook_name):
        try:
            result = _call(impl, hook_name, kwargs)
        except PluginError as exc:
            if errors is None:
                raise
            errors[impl.plugin_name] = str(exc)
            continue
        if result is not None:
            results.append((impl.plugin_name, result))
    return results


def describe_exception(exc):
    """``Type: first line of the message``; TensorFlow's own message where it has one."""
    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        message = str(exc)
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)  # TensorFlow's graph-function prefix
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    first = lines[0] if lines else "(no message)"
    if len(lines) > 1:
        first += " ..."
    return f"{type(exc).__name__}: {first}"
