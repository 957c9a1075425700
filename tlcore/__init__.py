"""tl core: the framework-agnostic orchestrator of a transfer-learning run.

Nothing in this package imports TensorFlow, PyTorch or the built-in plugins (``tlplugins``):
every framework-specific step is a pluggy hook answered by a plugin. The Python API
(:mod:`tlcore.api`) is available here, loaded on first use::

    import tlcore

    result = tlcore.train("configuration.json", epochs=5)
    tlcore.predict(result.saved_model_dir, ["photo.jpg"], top_k=3)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["train", "quantize", "check", "predict", "list_plugins", "list_models", "hookimpl", "TLError", "RunResult",
           "QuantizationResult", "HealthReport", "Prediction", "__version__"]

if TYPE_CHECKING:
    from tlcore.api import check, list_models, list_plugins, predict, quantize, train
    from tlcore.errors import TLError
    from tlcore.health import HealthReport
    from tlcore.hookspecs import hookimpl
    from tlcore.prediction import Prediction
    from tlcore.quantization import QuantizationResult
    from tlcore.run import RunResult

_LAZY = {
    "train": "tlcore.api",
    "quantize": "tlcore.api",
    "check": "tlcore.api",
    "predict": "tlcore.api",
    "list_plugins": "tlcore.api",
    "list_models": "tlcore.api",
    "hookimpl": "tlcore.hookspecs",
    "TLError": "tlcore.errors",
    "RunResult": "tlcore.run",
    "QuantizationResult": "tlcore.quantization",
    "HealthReport": "tlcore.health",
    "Prediction": "tlcore.prediction",
}


def __getattr__(name: str) -> Any:
    """The API's names, imported when first used, so that ``import tlcore`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tlcore' has no attribute {name!r}")

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
