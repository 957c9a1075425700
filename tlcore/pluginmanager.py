"""Finding, registering and describing plugins.

Built-in plugins are registered first, through the same path as third-party
ones: each is a module name. Entry points of the group ``tl`` follow, so an
installed plugin is asked before the built-ins (and built-ins are ``trylast``).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable

import pluggy

from tlcore import hookspecs
from tlcore.calls import describe_exception
from tlcore.errors import PluginError
from tlcore.frameworks import FRAMEWORK_ATTRIBUTE, served_by

ENTRY_POINT_GROUP = "tl"
DISABLE_ENV = "TL_DISABLE_PLUGINS"
"""Set to 1 to load no third-party plugins: the rescue when one stops ``tl`` from starting."""


def installed_plugins_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip() not in ("", "0")


@dataclass
class PluginInfo:
    """What ``tl plugins list`` shows of one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    blocked: bool = False
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    frameworks: tuple[str, ...] | None = None
    """The frameworks it serves (its ``TL_FRAMEWORK``); None for a framework-neutral plugin."""
    from_option: bool = False
    """Loaded with ``-p MODULE`` rather than installed."""

    @property
    def remedy(self) -> str:
        """What the user can do when this plugin is broken."""
        if self.from_option:
            return f"fix the module, or leave out -p {self.module}"
        return (f"uninstall it, skip it with --block {self.name}, "
                f"or set {DISABLE_ENV}=1 to load no installed plugins")


def _given(plugin: Any) -> Any:
    return plugin


def builtin_name(module_name: str, package: str = "tlplugins") -> str:
    """``tlplugins.datasets.imagenet_folder`` -> ``datasets.imagenet_folder``."""
    prefix = package + "."
    return module_name[len(prefix):] if module_name.startswith(prefix) else module_name


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus a record of every plugin seen, loaded or not."""

    def __init__(self, blocked: Iterable[str] = ()) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        for name in blocked:
            self.set_blocked(name)

    @property
    def blocked_names(self) -> list[str]:
        return [info.name for info in self.infos.values() if info.blocked]

    @property
    def failures(self) -> list[PluginInfo]:
        return [info for info in self.infos.values() if info.error]

    def load_builtins(self, module_names: Iterable[str], package: str = "tlplugins") -> None:
        for module_name in module_names:
            info = PluginInfo(builtin_name(module_name, package), module_name, builtin=True)
            self._load(info, functools.partial(importlib.import_module, module_name))

    def load_modules(self, module_names: Iterable[str]) -> None:
        """Plugins named by module (``tl run -p MODULE``): for trying a plugin without installing it.

        Like ``python -m``, the current folder is searched first.
        """
        module_names = list(module_names)
        if module_names and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        for module_name in module_names:
            info = PluginInfo(module_name, module_name, from_option=True)
            self._load(info, functools.partial(importlib.import_module, module_name))

    def load_objects(self, objects: Iterable[Any]) -> None:
        """Plugin objects or modules given in Python (``tlcore.train(..., plugins=[...])``), for one run: a
        module name (a string) is imported as ``tl run -p`` does, a class is made into its instance."""
        for plugin in objects:
            if isinstance(plugin, str):
                self.load_modules([plugin])
                continue
            if isinstance(plugin, type):
                try:
                    plugin = plugin()
                except TypeError as exc:
                    raise PluginError(f"plugin class {plugin.__name__} cannot be made without arguments "
                                      f"({exc}); pass an instance: plugins=[{plugin.__name__}(...)]") from None
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            if name in self.infos:
                name = f"{name}-{sum(1 for known in self.infos if known.startswith(name)) + 1}"
            info = PluginInfo(name, getattr(plugin, "__module__", None) or name)
            self._load(info, functools.partial(_given, plugin))

    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> None:
        if installed_plugins_disabled():
            return
        seen: set[tuple[str, str]] = set()
        for entry_point in metadata.entry_points(group=group):
            dist = getattr(entry_point, "dist", None)
            key = (entry_point.name, entry_point.value)
            if key in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(key)
            info = PluginInfo(
                entry_point.name,
                entry_point.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            self._load(info, entry_point.load)

    def _load(self, info: PluginInfo, load: Callable[[], Any]) -> None:
        if self.is_blocked(info.name):
            info.blocked = True
            self.infos.setdefault(info.name, info)
            return
        if info.name in self.infos:
            info.error = (
                f"another plugin ({self.infos[info.name].module}) is already registered as {info.name!r}; "
                "uninstall one of them"
            )
            self.infos[f"{info.name} ({info.module})"] = info
            return
        self.infos[info.name] = info
        try:
            plugin = load()
            self.register(plugin, name=info.name)
        except Exception as exc:  # a broken plugin is reported, not fatal
            info.error = describe_exception(exc)
            return
        try:
            info.frameworks = served_by(plugin)
        except ValueError as exc:
            info.error = str(exc)
            self.unregister(plugin)
            return
        self._check_hook_names(info, plugin)
        info.hooks = sorted(impl.name for impl in self.get_hookcallers(plugin) or ())

    def _check_hook_names(self, info: PluginInfo, plugin: Any) -> None:
        """Refuse implementations whose names match no hook (typos), like ``check_pending``."""
        known = self.hook_names()
        for caller in self.get_hookcallers(plugin) or ():
            if not caller.has_spec():
                close = difflib.get_close_matches(caller.name, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                info.error = f"implements {caller.name}, which is not a tl hook{hint}"
                self.unregister(plugin)
                return

    def hook_names(self) -> list[str]:
        """Names of the hooks tl defines (not of misspelled implementations)."""
        return sorted(name for name in dir(self.hook) if name.startswith("tl_") and getattr(self.hook, name).has_spec())

    def frameworks_of(self, plugin_name: str) -> tuple[str, ...] | None:
        """The frameworks the registered plugin ``plugin_name`` serves; None when it is neutral."""
        try:
            return served_by(self.get_plugin(plugin_name))
        except ValueError as exc:
            raise PluginError(f'plugin "{plugin_name}": {exc} ({FRAMEWORK_ATTRIBUTE})') from None

    def describe(self) -> list[PluginInfo]:
        """Every plugin seen, in registration order, with the hooks it implements."""
        return list(self.infos.values())

    def call_order(self, hook_name: str) -> list[str]:
        """Plugin names in the order a hook asks them (first asked first)."""
        caller = getattr(self.hook, hook_name)
        return [impl.plugin_name for impl in reversed(caller.get_hookimpls())]


BUILTINS_MODULE = "tlplugins"
"""The package of tl's built-in plugins, found by name (the core never imports it at module level)."""


def builtin_plugins() -> tuple[str, ...]:
    """Module names of tl's built-in plugins (``tlplugins.BUILTIN_PLUGINS``)."""
    return tuple(importlib.import_module(BUILTINS_MODULE).BUILTIN_PLUGINS)


def make_plugin_manager(builtins: Iterable[str] | None = None, blocked: Iterable[str] = (), entrypoints: bool = True,
                        extra: Iterable[str] = (), objects: Iterable[Any] = ()) -> PluginManager:
    """A fresh manager: ``builtins`` (module names; default tl's own), the entry points of group ``tl``,
    then ``extra`` module names (``tl run -p MODULE``), then ``objects`` (plugin objects or modules, e.g.
    defined in a notebook cell), each asked before the ones before it."""
    manager = PluginManager(blocked=blocked)
    manager.load_builtins(builtin_plugins() if builtins is None else builtins)
    if entrypoints:
        manager.load_entrypoints()
    manager.load_modules(extra)
    manager.load_objects(objects)
    return manager
