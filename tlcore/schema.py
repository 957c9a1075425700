"""A JSON Schema of configuration.json, so that editors complete and check it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.config import CORE_KEYS, REQUIRED, ConfigKey, plugin_config_keys

if TYPE_CHECKING:
    from tlcore.pluginmanager import PluginManager

JSON_TYPES = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean", "path": "string",
              "list": "array"}


def key_schema(key: ConfigKey, note: str = "") -> dict[str, Any]:
    """One key as a JSON Schema property."""
    schema: dict[str, Any] = {"description": key.help + (f" ({note})" if note else "")}
    if key.type in JSON_TYPES:
        types: list[str] = [JSON_TYPES[key.type]]
        if key.nullable:
            types.append("null")
        schema["type"] = types[0] if len(types) == 1 else types
    if key.choices:
        schema["enum"] = list(key.choices) + ([None] if key.nullable else [])
    if key.minimum is not None:
        schema["minimum"] = key.minimum
    if key.maximum is not None:
        schema["maximum"] = key.maximum
    if key.default is not REQUIRED:
        schema["default"] = list(key.default) if isinstance(key.default, tuple) else key.default
    if key.type == "path":
        schema["format"] = "path"
    return schema


def json_schema(manager: PluginManager) -> dict[str, Any]:
    """The schema of every key: the core's and those of every loaded plugin (with their framework)."""
    properties = {key.name: key_schema(key) for key in CORE_KEYS}
    for plugin, keys in plugin_config_keys(manager, errors={}).items():
        served = manager.frameworks_of(plugin)
        note = f"plugin {plugin}" + (f", framework {' or '.join(served)}" if served else "")
        for key in keys:
            properties.setdefault(key.name, key_schema(key, note))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tl configuration.json",
        "description": "Configuration of `tl run` and `tl quantize`; relative paths start at the file's folder.",
        "type": "object",
        "properties": dict(sorted(properties.items())),
        "required": [key.name for key in CORE_KEYS if key.required],
        "additionalProperties": False,
    }
