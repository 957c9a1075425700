"""Frameworks: named packs of plugins, selected by the configuration key ``framework``.

A framework (Keras, PyTorch, a third-party one, the tests' fake) is declared by a
plugin's ``tl_frameworks`` hook as a :class:`Framework`. Plugins that do
framework-specific work say which framework(s) they serve with a module (or class)
attribute ``TL_FRAMEWORK = "keras"`` (a name or a tuple of names); a plugin without
it is framework-neutral. A run asks only the selected framework's plugins and the
neutral ones, so a step is never answered by another framework's code.
"""

from __future__ import annotations

import difflib
import importlib.util
import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from tlcore.errors import ConfigError

if TYPE_CHECKING:
    from tlcore.report import Reporter

FRAMEWORK_ATTRIBUTE = "TL_FRAMEWORK"
DEFAULT_FRAMEWORK = "keras"

RUN_STEPS = ("tl_load_base_model", "tl_remove_top_layer", "tl_train", "tl_save_model", "tl_predict")
"""The framework steps every ``tl run`` needs, in the order a run calls them."""

STEPS = (*RUN_STEPS, "tl_load_model", "tl_quantize", "tl_export_quantized", "tl_export_tflite", "tl_devices",
         "tl_cluster")
"""Every framework step: the run's, loading a saved model (``tl predict``), quantization, and the devices."""

STEP_NAMES = {
    "tl_load_base_model": "load the base model",
    "tl_remove_top_layer": "remove the top layers",
    "tl_train": "train",
    "tl_save_model": "save",
    "tl_predict": "predict",
    "tl_load_model": "load a saved model",
    "tl_quantize": "quantize",
    "tl_export_quantized": "export a quantized model",
    "tl_export_tflite": "export TFLite models",
    "tl_devices": "describe its devices",
    "tl_cluster": "run on several workers",
}

OPTIONAL_KEYS = (
    "preprocessing", "learning_rate", "dropout",
    "weight_decay", "label_smoothing", "head_search",
    "augmentation", "augmentation_views", "fine_tune_layers", "feature_cache", "early_stopping_patience",
    "early_stopping_monitor", "holdout_fraction", "learning_rate_schedule", "warmup_epochs", "class_weight", "fine_tune_epochs",
    "fine_tune_learning_rate", "mixed_precision",
)
"""Core configuration keys a framework may or may not honour; the others apply to every framework."""

LAYOUTS = ("NHWC", "NCHW")

START_DELAY = 1.0
"""Seconds a framework's start-up (importing its libraries) may take before it shows an activity line: the first
response within 1.2 s, and a step over 5 s never silent."""


@dataclass(frozen=True)
class Devices:
    """What a run computes on, as its framework finds it (``tl_devices``): said at the start of a run, and
    what ``"mixed_precision": "auto"`` follows.

    :param accelerators: one description per GPU (or other accelerator) the run uses, e.g.
        ``"GPU 0: NVIDIA A100-SXM4-40GB (compute 8.0)"``; empty when it runs on the CPU.
    :param cpu: the CPU, e.g. ``"CPU (8 cores)"``.
    :param mixed_precision_benefits: whether float16 compute is faster on these devices (GPUs with tensor
        cores, compute capability 7.0 or more).
    :param spread: how one process spreads its work over several devices, e.g. ``"mirrored over 2 devices
        (tf.distribute.MirroredStrategy)"``; empty on one device.
    """

    accelerators: tuple[str, ...] = ()
    cpu: str = field(default_factory=lambda: cpu_description())
    mixed_precision_benefits: bool = False
    spread: str = ""

    def mixed_precision(self, setting: bool | str) -> bool:
        """Whether to compute in float16: the configured ``mixed_precision``, with ``"auto"`` resolved."""
        return setting if isinstance(setting, bool) else self.mixed_precision_benefits

    def describe(self, mixed_precision: bool) -> str:
        where = "; ".join((*(self.accelerators or (self.cpu,)), *((self.spread,) if self.spread else ())))
        return f"Devices: {where}; mixed precision {'on' if mixed_precision else 'off'}"


def cpu_description() -> str:
    """``"CPU (N cores)"``: the cores this process may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return f"CPU ({cores} core{'s' if cores != 1 else ''})"


MIXED_PRECISION_CAPABILITY = (7, 0)
"""NVIDIA compute capability from which float16 runs on tensor cores (Volta and later): mixed precision pays."""


def gpu_description(index: int, name: str, capability: tuple[int, int] | None) -> str:
    shown = f" (compute {capability[0]}.{capability[1]})" if capability else ""
    return f"GPU {index}: {name}{shown}"


@dataclass(frozen=True)
class Quieting:
    """How a framework's libraries are kept quiet in a run without ``--debug`` (:meth:`Framework.quieten`).

    :param env: environment variables set before the framework is imported (e.g. ``TF_CPP_MIN_LOG_LEVEL``).
    :param loggers: :mod:`logging` loggers that show errors only.
    :param message_noise: regular expressions removed from its libraries' error messages.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    loggers: tuple[str, ...] = ()
    message_noise: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def apply(self, quiet: bool = True) -> None:
        """Silence the libraries' start-up and log chatter, or with ``quiet=False`` let it through again (a later
        ``--debug`` call in the same process).

        Loggers get a filter that drops records below ERROR, rather than a level: libraries set their logger's
        level when first used (TensorFlow sets INFO in an interactive shell such as a notebook), after this ran.
        """
        if quiet:
            for name, value in self.env.items():
                os.environ.setdefault(name, value)
        for name in self.loggers:
            logger = logging.getLogger(name)
            if quiet and _errors_only not in logger.filters:
                logger.addFilter(_errors_only)
            elif not quiet:
                logger.removeFilter(_errors_only)


@dataclass(frozen=True)
class Framework:
    """What the core needs to know of a framework, beyond its plugins' hooks.

    :param name: the value of the configuration key ``framework`` that selects it.
    :param summary: one line for ``tl plugins list``.
    :param keys: the optional core keys (:data:`OPTIONAL_KEYS`) it honours; giving another
        one in configuration.json is an error.
    :param key_hints: advice shown when a key it does not honour is given, by key: an optional core key, or a
        key of another framework's plugins (e.g. ``source_keras_model`` for torch).
    :param default_preprocessing: the preprocessing preset used when the configuration
        gives none (see :data:`tlcore.preprocessing.PRESETS`).
    :param layout: ``"NHWC"`` or ``"NCHW"``: how image batches reach its hooks.
    :param model_format: what ``saved_model/`` holds, for the user.
    :param requires: modules it imports; a missing one is a one-line error at start-up.
    :param install: how to install them.
    :param quiet: how its libraries are kept quiet, unless ``--debug`` (a :class:`Quieting`).
    :param source_key: the configuration key that gives a model of the user's as the base
        (``source_keras_model``), in place of a named base (``base_model``, :mod:`tlcore.base_models`).
    """

    name: str
    summary: str = ""
    keys: tuple[str, ...] = ()
    key_hints: Mapping[str, str] = field(default_factory=dict)
    default_preprocessing: str = "unit"
    layout: str = "NHWC"
    model_format: str = ""
    requires: tuple[str, ...] = ()
    install: str = ""
    quiet: Quieting = field(default_factory=Quieting)
    source_key: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"Framework name {self.name!r} must be a word, e.g. 'keras'")
        if self.layout not in LAYOUTS:
            raise ValueError(f"Framework {self.name!r}: layout must be one of {LAYOUTS}")
        unknown = sorted(set(self.keys) - set(OPTIONAL_KEYS))
        if unknown:
            raise ValueError(f"Framework {self.name!r}: keys {unknown} are not optional core keys {OPTIONAL_KEYS}")
        object.__setattr__(self, "key_hints", MappingProxyType(dict(self.key_hints)))

    def missing_modules(self) -> list[str]:
        """The modules of :attr:`requires` that cannot be imported (found without importing them)."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    def check_installed(self) -> None:
        missing = self.missing_modules()
        if missing:
            raise ConfigError(
                f'framework "{self.name}" needs {", ".join(missing)}, which is not installed; {self.install or "install it"}'
            )

    def quieten(self, quiet: bool = True) -> None:
        """Silence the framework's own start-up and log chatter (``tl run`` without ``--debug``), or with
        ``quiet=False`` let it through again: :meth:`Quieting.apply` of :attr:`quiet`."""
        self.quiet.apply(quiet)

    def start(self, reporter: Reporter) -> None:
        """Import the libraries of :attr:`requires` now, with an activity line when that takes a while (TensorFlow
        takes 3 to 20 s on a busy machine): the commands call this before the framework's first step, so its
        start-up is never a silent pause. Libraries imported already cost nothing and print nothing."""
        pending = [name for name in self.requires if name not in sys.modules]
        if not pending:
            return
        with reporter.activity(f"Starting {self.name}", delay=START_DELAY):
            for name in pending:
                importlib.import_module(name)


def _errors_only(record: Any) -> bool:
    return bool(record.levelno >= logging.ERROR)


def served_by(plugin: Any) -> tuple[str, ...] | None:
    """The frameworks ``plugin`` serves (its ``TL_FRAMEWORK``), or None for a neutral plugin.

    :raises ValueError: when the attribute is neither a name nor a tuple or list of names.
    """
    value = getattr(plugin, FRAMEWORK_ATTRIBUTE, None)
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f'{FRAMEWORK_ATTRIBUTE} must be a framework name or a tuple of names, e.g. "keras"')
    return tuple(value)


def serves(frameworks: tuple[str, ...] | None, name: str | None) -> bool:
    """Whether a plugin serving ``frameworks`` (None: neutral) is asked when ``name`` is selected."""
    return name is None or frameworks is None or name in frameworks


def select_framework(frameworks: Mapping[str, tuple[Framework, str]], name: str, source: str) -> Framework:
    """The framework called ``name``, or a one-line ConfigError listing the available ones."""
    if name not in frameworks:
        available = ", ".join(sorted(frameworks)) or "none (is a built-in plugin blocked?)"
        close = difflib.get_close_matches(name, list(frameworks), n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        raise ConfigError(f'{source}: "framework" is "{name}", which is not available; {hint}available: {available}')
    return frameworks[name][0]
