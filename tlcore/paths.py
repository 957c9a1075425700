"""Resolving and checking the paths named in configuration.json."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tlcore.errors import ConfigError

KINDS = ("file", "dir", "file_or_dir", "output_dir")


def resolve_path(raw: Any, *, base_dir: Path, key: str, kind: str, source: str = "configuration.json") -> Path:
    """Resolve ``raw`` (a string from the configuration) to an absolute, checked path.

    Relative paths start at ``base_dir``; ``~`` is expanded. A symbolic link in any
    component is refused. ``kind`` says what must be there: ``file``, ``dir``,
    ``file_or_dir`` (must exist) or ``output_dir`` (a folder, or nothing yet).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown path kind {kind!r}")
    where = f'{source}: "{key}"'
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be a path string, not {type_name(raw)}")
    if not raw.strip():
        raise ConfigError(f"{where} is empty; give a path")
    if "\0" in raw:
        raise ConfigError(f"{where} contains a NUL character; give a valid path")
    path = Path(os.path.normpath(Path(base_dir, os.path.expanduser(raw))))
    refuse_symlinks(path, where)
    exists = path.exists()
    if kind == "file" and not path.is_file():
        raise ConfigError(
            f"{where}: {'not a file' if exists else 'file not found'}: {path}; "
            "fix the path (relative paths start at the configuration file's folder)"
        )
    if kind == "dir" and not path.is_dir():
        raise ConfigError(
            f"{where}: {'not a folder' if exists else 'folder not found'}: {path}; "
            "fix the path (relative paths start at the configuration file's folder)"
        )
    if kind == "file_or_dir" and not exists:
        raise ConfigError(
            f"{where}: not found: {path}; "
            "fix the path (relative paths start at the configuration file's folder)"
        )
    if kind == "output_dir" and exists and not path.is_dir():
        raise ConfigError(f"{where}: {path} exists and is not a folder; choose a folder path")
    return path


def refuse_symlinks(path: Path, where: str) -> None:
    """Raise ConfigError if any existing component of absolute ``path`` is a symbolic link."""
    current = Path(path.anchor)
    for part in path.parts[1:]:
        current = current / part
        if current.is_symlink():
            raise ConfigError(
                f"{where}: {current} is a symbolic link; symbolic links are not allowed "
                "in configured paths, give the real path"
            )
        if not current.exists():
            return


def type_name(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
