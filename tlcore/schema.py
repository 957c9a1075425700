"""A JSON Schema of configuration.json, so that editors complete and check it.

Every key is there: the core's (:data:`tlcore.config.CORE_KEYS`) and those every
installed plugin declares (``tl_config_keys``; a framework's plugin's keys say which
framework in their description). A :class:`tlcore.config.ConfigKey` maps to JSON
Schema (draft 2020-12) as: ``type`` (``path`` is a string, ``list`` an array, ``any``
unconstrained unless the core knows its shape), ``choices`` -> ``enum``, ``minimum``
and ``maximum``, ``nullable`` -> ``null`` allowed, ``default``, ``help`` ->
``description``; required keys are ``required`` and unknown keys are refused
(``"additionalProperties": false``), as ``tl run`` refuses them.

Editors find the schema through the key ``"$schema"`` (which tl ignores), e.g.
``"$schema": "./tl.schema.json"`` after ``tl config schema > tl.schema.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from tlcore.config import CORE_KEYS, REQUIRED, SCHEMA_KEY, ConfigKey, plugin_config_keys
from tlcore.frameworks import OPTIONAL_KEYS, Framework
from tlcore.images import AUGMENTATIONS
from tlcore.preprocessing import CHANNEL_ORDERS, PRESETS
from tlcore.registry import registered_frameworks

if TYPE_CHECKING:
    from tlcore.pluginmanager import PluginManager

DRAFT = "https://json-schema.org/draft/2020-12/schema"
JSON_TYPES = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean", "path": "string",
              "list": "array"}


def _shapes() -> dict[str, dict[str, Any]]:
    """What the core's keys of type ``list`` and ``any`` hold (their checks are code: the schema says the same)."""
    three = {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}
    return {
        "weights": {"anyOf": [{"enum": ["imagenet", None]},
                              {"type": "string", "minLength": 1, "description": "a local weights file"}]},
        "preprocessing": {"anyOf": [
            {"enum": [*PRESETS, None]},
            {"type": "object", "required": ["mean", "std"], "additionalProperties": False, "properties": {
                "mean": {**three, "description": "per RGB channel, in pixel units (0-255)"},
                "std": {**three, "items": {"type": "number", "exclusiveMinimum": 0},
                        "description": "per RGB channel, in pixel units (0-255)"},
                "channel_order": {"enum": list(CHANNEL_ORDERS), "default": "RGB"},
            }},
        ]},
        "class_weight": {"anyOf": [
            {"enum": ["balanced", None]},
            {"type": "object", "minProperties": 1, "additionalProperties": {"type": "number", "minimum": 0},
             "description": "class name -> weight"},
        ]},
        "augmentation": {"items": {"enum": list(AUGMENTATIONS)}},
        "block_plugins": {"items": {"type": "string", "minLength": 1}},
    }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def key_schema(key: ConfigKey, note: str = "", shape: dict[str, Any] | None = None) -> dict[str, Any]:
    """One key as a JSON Schema property; ``note`` is added to its description, ``shape`` to its constraints."""
    description = key.help or key.name
    if key.type == "path":
        description += " (a path; relative paths start at the configuration's folder)"
    schema: dict[str, Any] = {"description": description + (f" [{note}]" if note else "")}
    if key.type in JSON_TYPES:
        types: list[str] = [JSON_TYPES[key.type]]
        if key.nullable:
            types.append("null")
        schema["type"] = types[0] if len(types) == 1 else types
    if key.choices:
        schema["enum"] = [_jsonable(choice) for choice in key.choices] + ([None] if key.nullable else [])
    if key.minimum is not None:
        schema["minimum"] = key.minimum
    if key.maximum is not None:
        schema["maximum"] = key.maximum
    if key.type == "path" and not key.nullable:
        schema["minLength"] = 1
    schema.update(shape or {})
    if key.default is not REQUIRED:
        schema["default"] = _jsonable(key.default)
    return schema


@dataclass(frozen=True)
class DeclaredKey:
    """A configuration key and who declares it: ``owner`` is ``"core"`` or the plugins' names; ``frameworks``
    the frameworks it applies to, empty when it applies to every framework."""

    key: ConfigKey
    owner: str
    frameworks: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        where = "" if self.owner == "core" else f"plugin {self.owner}"
        only = f"framework {' or '.join(self.frameworks)} only" if self.frameworks else ""
        return "; ".join(part for part in (where, only) if part)


def declared_keys(manager: PluginManager,
                  declared: Mapping[str, tuple[Framework, str]] | None = None) -> list[DeclaredKey]:
    """Every key: the core's, then every loaded plugin's (a key several plugins declare once, with all of them),
    sorted by name."""
    if declared is None:  # the frameworks the plugins declare (a caller that has them passes them)
        declared = registered_frameworks(manager, errors={})
    found: dict[str, DeclaredKey] = {}
    for key in CORE_KEYS:  # core keys that only some frameworks honour say which
        honouring = sorted(name for name, (framework, _) in declared.items() if key.name in framework.keys)
        partly = key.name in OPTIONAL_KEYS and honouring and len(honouring) < len(declared)
        found[key.name] = DeclaredKey(key, "core", tuple(honouring) if partly else ())
    declaring: dict[str, tuple[ConfigKey, list[str], set[str] | None]] = {}
    for plugin, keys in plugin_config_keys(manager, errors={}).items():
        served = manager.frameworks_of(plugin)
        for key in keys:
            _, plugins, frameworks = declaring.setdefault(key.name, (key, [], set()))
            plugins.append(plugin)
            if frameworks is not None:
                if served:
                    frameworks.update(served)
                else:  # a framework-neutral plugin honours it everywhere
                    declaring[key.name] = (key, plugins, None)
    for name, (key, plugins, frameworks) in declaring.items():
        only = tuple(sorted(frameworks)) if frameworks is not None and frameworks != set(declared) else ()
        found.setdefault(name, DeclaredKey(key, ", ".join(sorted(plugins)), only))
    return [found[name] for name in sorted(found)]


def json_schema(manager: PluginManager) -> dict[str, Any]:
    """The schema of every key: the core's and those of every loaded plugin (with their framework)."""
    shapes = _shapes()
    declared = registered_frameworks(manager, errors={})
    if declared:
        shapes["framework"] = {"enum": sorted(declared)}
    properties = {entry.key.name: key_schema(entry.key, entry.note, shapes.get(entry.key.name))
                  for entry in declared_keys(manager, declared)}
    return {
        "$schema": DRAFT,
        "title": "tl configuration.json",
        "description": "Configuration of `tl run` and `tl quantize`: relative paths start at the file's folder; "
                       "made by `tl config schema` for the plugins installed then.",
        "type": "object",
        "properties": {SCHEMA_KEY: {"type": "string", "description": "This schema's path or URL, for editors "
                                    "(tl ignores it)"}, **properties},
        "required": [key.name for key in CORE_KEYS if key.required],
        "additionalProperties": False,
    }


def markdown_table(manager: PluginManager) -> str:
    """The keys as a Markdown table (key, what it does, default, who reads it): the documentation's key table."""
    rows = ["| key | what it does | default | read by |", "|---|---|---|---|"]
    for entry in declared_keys(manager):
        key = entry.key
        default = "required" if key.required else f"`{json.dumps(_jsonable(key.default), ensure_ascii=False)}`"
        text = (key.help or key.name).replace("|", "\\|")
        if key.choices:
            text += "; one of " + ", ".join(f"`{json.dumps(choice)}`" for choice in key.choices)
        rows.append(f"| `{key.name}` | {text} | {default} | {entry.note or 'core'} |")
    return "\n".join(rows) + "\n"
