"""A safe file format for what a checkpoint holds: nested dicts, lists and tuples of numbers, strings, None, NumPy
arrays and torch tensors, in one ``.npz`` file read with ``allow_pickle=False``, so that loading it can never run
code (a pickle can: a checkpoint found in an output folder someone else wrote must be harmless to read).

The structure is JSON (in the archive's entry ``__state__``), each array an entry of its own; dict keys that are
not strings (torch optimizers number their parameters) and tuples are kept as they were.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import IO, Any

STRUCTURE = "__state__"


class StateError(ValueError):
    """The file is not a state this module wrote, or the value holds something it cannot keep."""


def dump(value: Any, handle: IO[bytes]) -> None:
    """Write ``value`` to ``handle`` (a binary file)."""
    import numpy as np

    arrays: dict[str, Any] = {}
    structure = json.dumps(_encode(value, arrays), allow_nan=True).encode()
    np.savez(handle, **{STRUCTURE: np.frombuffer(structure, dtype=np.uint8)}, **arrays)


def load(path: str | Path) -> Any:
    """What :func:`dump` wrote to ``path``; torch tensors come back as tensors.

    :raises StateError: when the file is not such a state (damaged, or another format).
    """
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise StateError(f"not a saved state: {exc}") from None
    try:
        structure = json.loads(arrays.pop(STRUCTURE).tobytes())
        return _decode(structure, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise StateError(f"not a saved state: {type(exc).__name__}: {exc}") from None


def _encode(value: Any, arrays: dict[str, Any]) -> Any:
    import numpy as np

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {"dict": {key: _encode(item, arrays) for key, item in value.items()}}
        return {"pairs": [[_encode(key, arrays), _encode(item, arrays)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [_encode(item, arrays) for item in value]}
    name = f"a{len(arrays)}"
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise StateError("an array of Python objects cannot be kept")
        arrays[name] = value
        return {"array": name}
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):  # a tensor, without importing torch
        arrays[name] = value.detach().cpu().numpy()
        return {"tensor": name}
    raise StateError(f"a {type(value).__name__} cannot be kept in a checkpoint")


def _decode(value: Any, arrays: dict[str, Any]) -> Any:
    if not isinstance(value, dict):
        return value
    [(kind, content)] = value.items()
    if kind == "dict":
        return {key: _decode(item, arrays) for key, item in content.items()}
    if kind == "pairs":
        return {_decode(key, arrays): _decode(item, arrays) for key, item in content}
    if kind in ("list", "tuple"):
        items = [_decode(item, arrays) for item in content]
        return items if kind == "list" else tuple(items)
    if kind == "array":
        return arrays[content]
    if kind == "tensor":
        import torch

        return torch.from_numpy(arrays[content].copy())
    raise StateError(f"unknown entry {kind!r}")

