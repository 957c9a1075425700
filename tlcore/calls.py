"""Calling hooks so that every result and every failure is attributed to a plugin.

Implementations are asked in pluggy's order (last registered first, shifted by
``tryfirst``/``trylast``); knowing which plugin answered lets ``tl`` say who did
what, and name the plugin when one fails. :class:`Hooks` asks only the plugins of
the selected framework and the framework-neutral ones.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from tlcore.errors import PluginError, TLError
from tlcore.frameworks import STEP_NAMES, serves

if TYPE_CHECKING:
    from pluggy import HookImpl

    from tlcore.base_models import BaseModel
    from tlcore.frameworks import Framework
    from tlcore.pluginmanager import PluginManager


def _implementations(manager: PluginManager, hook_name: str, framework: str | None = None) -> Iterator[HookImpl]:
    caller = getattr(manager.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            raise PluginError(
                f'plugin "{impl.plugin_name}" wraps {hook_name}; tl hooks do not support wrappers, '
                "implement the hook directly"
            )
        if serves(manager.frameworks_of(impl.plugin_name), framework):
            yield impl


def _call(impl: HookImpl, hook_name: str, kwargs: dict[str, Any], noise: Iterable[str] = ()) -> Any:
    try:
        return impl.function(**{name: kwargs[name] for name in impl.argnames})
    except TLError:
        raise
    except SystemExit as exc:  # not the plugin's to end tl (and exit 0 would pass for success)
        raise PluginError(exited(impl.plugin_name, hook_name, exc)) from None
    except Exception as exc:
        raise PluginError(
            f'plugin "{impl.plugin_name}" failed in {hook_name}: {describe_exception(exc, noise)}'
        ) from exc


def exited(plugin: str, hook_name: str, exc: SystemExit) -> str:
    """What to say of a plugin that called ``sys.exit`` (or raised SystemExit) in a hook."""
    return (f'plugin "{plugin}" called sys.exit({exc.code!r}) in {hook_name}; a plugin stops a run by raising an '
            "exception, not by exiting")


def declarations(manager: PluginManager, hook_name: str, kind: type, key: Callable[[Any], Any],
                 described: Callable[[Any], str], errors: dict[str, str] | None = None) -> dict[Any, tuple[Any, str]]:
    """``{key(item): (item, plugin name)}`` of what the plugins declare with the collecting hook ``hook_name``
    (each a list of ``kind``: frameworks, base models).

    A plugin returning something else, or an item whose key another plugin declared already (``described`` names
    it), raises PluginError, unless ``errors`` is a dict: then the error is stored under the plugin's name.
    """
    found: dict[Any, tuple[Any, str]] = {}
    for plugin, declared in call_all(manager, hook_name, errors=errors):
        try:
            if not isinstance(declared, (list, tuple)) or not all(isinstance(item, kind) for item in declared):
                raise PluginError(f'plugin "{plugin}" returned {type(declared).__name__} from {hook_name}; it must '
                                  f"return a list of {kind.__module__}.{kind.__name__}")
            for item in declared:
                if key(item) in found:
                    raise PluginError(f'{described(item)} is declared by both "{found[key(item)][1]}" and "{plugin}"; '
                                      "block or uninstall one of them")
        except PluginError as exc:
            if errors is None:
                raise
            errors[plugin] = str(exc)
            continue
        for item in declared:
            found[key(item)] = (item, plugin)
    return found


def call_first(manager: PluginManager, hook_name: str, **kwargs: Any) -> tuple[Any, str | None]:
    """Ask plugins in order; return ``(result, plugin_name)`` of the first non-None answer."""
    return Hooks(manager).first(hook_name, **kwargs)


def call_all(manager: PluginManager, hook_name: str, errors: dict[str, str] | None = None,
             **kwargs: Any) -> list[tuple[str, Any]]:
    """Ask every plugin; return ``[(plugin_name, result)]`` for the non-None results.

    A failing plugin raises :class:`PluginError`, unless ``errors`` is a dict: then
    its error is stored there under the plugin's name and the others are still asked.
    """
    return Hooks(manager).all(hook_name, errors=errors, **kwargs)


class Hooks:
    """The hooks of one run: only the plugins of ``framework`` and the neutral ones are asked.

    Without a framework, every plugin is asked (configuration keys, listing).
    """

    def __init__(self, manager: PluginManager, framework: Framework | None = None) -> None:
        self.manager = manager
        self.framework = framework
        self.base: BaseModel | None = None
        """The named base model the run builds (:mod:`tlcore.base_models`); None for a model of the user's."""
        self._noise = framework.quiet.message_noise if framework is not None else ()

    @property
    def framework_name(self) -> str | None:
        return self.framework.name if self.framework is not None else None

    def implementations(self, hook_name: str) -> list[HookImpl]:
        """The implementations asked, in order (first asked first)."""
        return list(_implementations(self.manager, hook_name, self.framework_name))

    def order(self, hook_name: str) -> list[str]:
        """Plugin names in the order ``hook_name`` asks them."""
        return [impl.plugin_name for impl in self.implementations(hook_name)]

    def first(self, hook_name: str, **kwargs: Any) -> tuple[Any, str | None]:
        """``(result, plugin_name)`` of the first non-None answer, or ``(None, None)``."""
        for impl in self.implementations(hook_name):
            result = _call(impl, hook_name, kwargs, self._noise)
            if result is not None:
                return result, impl.plugin_name
        return None, None

    def answer(self, hook_name: str, **kwargs: Any) -> tuple[Any, str]:
        """Like :meth:`first`, but no answer at all is an error that names the step."""
        result, plugin = self.first(hook_name, **kwargs)
        if plugin is None:
            raise PluginError(f"no plugin answered {hook_name}{self._of_framework(hook_name)}; is a plugin blocked?")
        return result, plugin

    def all(self, hook_name: str, errors: dict[str, str] | None = None, **kwargs: Any) -> list[tuple[str, Any]]:
        """``[(plugin_name, result)]`` of every non-None result; see :func:`call_all` for ``errors``."""
        results = []
        for impl in self.implementations(hook_name):
            try:
                result = _call(impl, hook_name, kwargs, self._noise)
            except PluginError as exc:
                if errors is None:
                    raise
                errors[impl.plugin_name] = str(exc)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    def require(self, hook_names: Iterable[str]) -> None:
        """Refuse to start when a needed hook has no implementation: a missing step is found at once."""
        for hook_name in hook_names:
            if not self.implementations(hook_name):
                raise PluginError(f"no plugin implements {hook_name}{self._of_framework(hook_name)}; "
                                  "is a plugin blocked or not installed?")

    def _of_framework(self, hook_name: str) -> str:
        if self.framework is None or hook_name not in STEP_NAMES:
            return ""
        return f' (framework "{self.framework.name}" cannot {STEP_NAMES[hook_name]})'


def describe_exception(exc: BaseException, noise: Iterable[str] = ()) -> str:
    """``Type: first line of the message``; a library's own ``message`` attribute where it has one.

    ``noise`` are regular expressions of text to drop (a framework's internal prefixes).
    """
    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        message = str(exc)
    for pattern in noise:
        message = re.sub(pattern, "", message)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    first = lines[0] if lines else "(no message)"
    if len(lines) > 1:
        first += " ..."
    return f"{type(exc).__name__}: {first}"
