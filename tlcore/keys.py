"""Configuration keys: how one is declared (:class:`ConfigKey`), the core's (:data:`CORE_KEYS`) and those several
plugins read (:data:`SHARED_KEYS`).

Each key is declared once, by the part of tl that reads it: the core's here, a plugin's in its
``tl_config_keys`` (the built-in plugins too). A key several plugins read is declared here, in
:data:`SHARED_KEYS`, and each of them returns it from ``tl_config_keys``: declaring the same key twice is
allowed only when the declarations are equal. Defaults, checks, ``tl init``'s starting file
(:attr:`ConfigKey.starter`), ``tl config schema`` and the documentation's key tables all come from these
declarations.
"""

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tlcore.errors import ConfigError
from tlcore.frameworks import DEFAULT_FRAMEWORK
from tlcore.images import AUGMENTATIONS
from tlcore.paths import resolve_path, type_name
from tlcore.preprocessing import CHANNEL_ORDERS, PRESETS


def plugin_names(value: Any) -> tuple[str, ...]:
    """``block_plugins`` as a tuple; ValueError if it is not a list of names."""
    if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
        raise ValueError('must be a list of plugin names, e.g. ["metrics.per_class"]')
    return tuple(value)



REQUIRED = object()
"""Default of a key that must be present."""

OMITTED = object()
"""``ConfigKey.starter``: ``tl init`` leaves the key out of a new configuration."""

DEFAULT = object()
"""``ConfigKey.starter``: ``tl init`` writes the key with its default."""

SCHEMA_KEY = "$schema"
"""A configuration may name its JSON Schema (``tl config schema``) under this key, for editors; tl ignores it."""

TYPES = ("integer", "number", "string", "boolean", "path", "list", "any")


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key: its type, default and limits.

    Plugins return these from ``tl_config_keys``. ``type`` is one of ``integer``,
    ``number``, ``string``, ``boolean``, ``path``, ``list`` or ``any``; a ``path``
    also has ``path_kind`` (``file``, ``dir``, ``file_or_dir`` or ``output_dir``)
    and is resolved from the configuration file's folder. ``convert``, when given,
    is called as ``convert(value, base_dir)`` after the type check and returns the
    value to use, or raises ``ValueError(message)``, which becomes a one-line
    :class:`tlcore.errors.ConfigError` naming the file and the key.
    """

    name: str
    type: str
    default: Any = REQUIRED
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    nullable: bool = False
    path_kind: str = "file_or_dir"
    convert: Callable[[Any, Path], Any] | None = None
    affects_model: bool = True
    """Whether the trained model depends on it. Keys that do not (outputs, quantization, reports) may change
    between training and quantizing, or resuming."""
    starter: Any = OMITTED
    """What ``tl init`` writes for this key in a new configuration: :data:`OMITTED` (nothing), :data:`DEFAULT`
    (the default) or a value."""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"ConfigKey {self.name!r}: type must be one of {TYPES}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """A short human description: type, limits and default."""
        text = self.type
        if self.choices:
            text += " (" + ", ".join(json.dumps(c) for c in self.choices) + ")"
        if self.minimum is not None and self.maximum is not None:
            text += f" {self.minimum:g}..{self.maximum:g}"
        elif self.minimum is not None:
            text += f" >= {self.minimum:g}"
        if self.nullable:
            text += " or null"
        text += ", required" if self.required else f", default {json.dumps(self.default)}"
        return text

    def check(self, value: Any, base_dir: Path, source: str) -> Any:
        """Return the checked (and converted) value, or raise ConfigError."""
        where = f'{source}: "{self.name}"'
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{where} must not be null; {self.help or 'give a value'}")
        if self.type == "path":
            if self.nullable and value == "":
                return None
            path = resolve_path(value, base_dir=base_dir, key=self.name, kind=self.path_kind, source=source)
            return self._converted(path, base_dir, where)
        expected = {
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "string": lambda v: isinstance(v, str),
            "boolean": lambda v: isinstance(v, bool),
            "list": lambda v: isinstance(v, list),
            "any": lambda v: True,
        }[self.type]
        if not expected(value):
            article = "an" if self.type[0] in "aeiou" else "a"
            raise ConfigError(f"{where} must be {article} {self.type}, not {type_name(value)} ({json.dumps(value)})")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number")
        if self.choices and value not in self.choices:
            options = ", ".join(json.dumps(c) for c in self.choices)
            raise ConfigError(f"{where} is {json.dumps(value)}; use one of {options}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{where} is {value}; it must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{where} is {value}; it must be at most {self.maximum:g}")
        return self._converted(value, base_dir, where)

    def _converted(self, value: Any, base_dir: Path, where: str) -> Any:
        if self.convert is None:
            return value
        try:
            return self.convert(value, base_dir)
        except ValueError as exc:
            raise ConfigError(f"{where} {exc}") from None
        except ConfigError as exc:  # a path the converter resolved: named where it was given, not configuration.json
            raise ConfigError(str(exc).replace(f'configuration.json: "{self.name}"', where, 1)) from None


def _weights(value: Any, base_dir: Path) -> str | Path:
    if value == "imagenet":
        return value
    if not isinstance(value, str):
        raise ValueError('must be "imagenet", null or the path of a weights file')
    if value.strip().lower() in ("imagenet", "none", "null", "random"):
        raise ValueError(f'is "{value}"; write "imagenet" (lower case) or null (without quotes) for random weights')
    return resolve_path(value, base_dir=base_dir, key="weights", kind="file")


def _remove_top(value: Any, base_dir: Path) -> bool | str:
    if value == "auto" or value is False:
        return value
    raise ValueError(f'is {json.dumps(value)}; use "auto" (remove the base model\'s trailing classification layers) '
                     "or false (remove nothing: its output is the features)")


def _mixed_precision(value: Any, base_dir: Path) -> bool | str:
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError(f'is {json.dumps(value)}; use "auto" (on where the device benefits), true or false')


STD_RANGE = (0.01, 10000.0)
"""A preprocessing's std, in pixel units: outside it, float32 input and loss overflow or lose every digit."""
CLASS_WEIGHT_MAX = 10000.0
"""The largest class weight: larger ones overflow the loss (1e308 gave NaN) without a use."""


def _preprocessing(value: Any, base_dir: Path) -> str | dict[str, Any]:
    """A preset name, or ``{"mean": [r, g, b], "std": [r, g, b], "channel_order": "RGB"}`` in pixel units."""
    if isinstance(value, str):
        if value not in PRESETS:
            close = difflib.get_close_matches(value, list(PRESETS), n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise ValueError(f'is "{value}"; {hint}use one of {", ".join(PRESETS)}, or {{"mean": [...], "std": [...]}}')
        return value
    if not isinstance(value, dict):
        raise ValueError(f"must be one of {', '.join(PRESETS)} or an object with \"mean\" and \"std\"")
    unknown = sorted(set(value) - {"mean", "std", "channel_order"})
    if unknown or "mean" not in value or "std" not in value:
        raise ValueError('as an object needs "mean" and "std" (3 numbers each, pixel units 0-255) and may have '
                         '"channel_order"' + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    for name in ("mean", "std"):
        numbers = value[name]
        if (not isinstance(numbers, list) or len(numbers) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers)):
            raise ValueError(f'"{name}" must be a list of 3 numbers (R, G, B, in pixel units 0-255)')
    if not all(0 <= v <= 255 for v in value["mean"]):
        raise ValueError(f'"mean" is {json.dumps(value["mean"])}; each value is a pixel value from 0 to 255')
    if not all(STD_RANGE[0] <= v <= STD_RANGE[1] for v in value["std"]):
        raise ValueError(f'"std" is {json.dumps(value["std"])}; each value must be from {STD_RANGE[0]} to '
                         f"{STD_RANGE[1]:g} (127.5 gives [-1, 1], 255 gives [0, 1]): smaller or larger makes the "
                         "model's input overflow or vanish")
    order = value.get("channel_order", "RGB")
    if order not in CHANNEL_ORDERS:
        raise ValueError(f'"channel_order" must be one of {", ".join(CHANNEL_ORDERS)}')
    return {"mean": [float(v) for v in value["mean"]], "std": [float(v) for v in value["std"]], "channel_order": order}


def _augmentation(value: Any, base_dir: Path) -> tuple[str, ...]:
    for item in value:
        if item not in AUGMENTATIONS:
            close = difflib.get_close_matches(str(item), AUGMENTATIONS, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise ValueError(f"has {json.dumps(item)}; {hint}use any of {', '.join(AUGMENTATIONS)}")
    return tuple(dict.fromkeys(value))


MAX_VIEWS = 8


def _views(value: Any, base_dir: Path) -> int | str:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_VIEWS):
        return value
    raise ValueError(f'is {json.dumps(value)}; use "auto" or a number of views from 0 to {MAX_VIEWS}')


def _head_search(value: Any, base_dir: Path) -> bool | str:
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError(f'is {json.dumps(value)}; use "auto" (when the base is frozen and features are computed once), '
                     "true or false")


def _class_weight(value: Any, base_dir: Path) -> str | dict[str, float]:
    if value == "balanced":
        return value
    if isinstance(value, str):
        raise ValueError(f'is "{value}"; use "balanced" or an object of class name -> weight')
    if not isinstance(value, dict) or not value:
        raise ValueError('must be "balanced", null or an object of class name -> weight, e.g. {"cat": 2.0}')
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or not 0 <= weight <= CLASS_WEIGHT_MAX:
            raise ValueError(f'weight of "{name}" is {json.dumps(weight)}; weights are numbers from 0 to '
                             f"{CLASS_WEIGHT_MAX:g}")
    if not any(weight > 0 for weight in value.values()):
        raise ValueError("gives every class the weight 0, so nothing would be learned; give at least one class a "
                         "weight above 0")
    return {name: float(weight) for name, weight in value.items()}


MOBILENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

CORE_KEYS = (
    ConfigKey("dataset_training_dir", "path", path_kind="file_or_dir",
              help="training images, one sub-folder per class; or a .csv or .jsonl file listing images and labels"),
    ConfigKey("dataset_validation_dir", "path", path_kind="file_or_dir",
              help="validation images, the same way (a listing may be the training one, with a split column)"),
    ConfigKey("evaluate_label_file", "path", default=None, nullable=True, path_kind="file",
              help="labels.json (class name -> id); default: labels.json beside the training folder (or listing, "
                   "where it is optional: ids then follow the class names' sorted order)"),
    ConfigKey("batch_size", "integer", starter=DEFAULT, default=32, minimum=1, maximum=65536,
              help="images per training step (power of two recommended)"),
    ConfigKey("input_tensor_size", "integer", starter=DEFAULT, default=224, minimum=1, maximum=4096,
              help="side of the square input tensor, in pixels (the model says how small it may be: 32 for "
                   "Keras' MobileNetV2)"),
    ConfigKey("epochs", "integer", starter=DEFAULT, default=10, minimum=1, maximum=100000,
              help="passes over the training images"),
    ConfigKey("output_dir", "path", starter="output", path_kind="output_dir",
              help="where saved_model/ is written; created if missing"),
    ConfigKey("evaluate_result_dir", "path", starter="output/evaluation", affects_model=False, path_kind="output_dir",
              help="where results.json is written; created if missing"),
    ConfigKey("framework", "string", starter=DEFAULT, default=DEFAULT_FRAMEWORK,
              help="the framework that loads, trains and saves the model, e.g. keras or torch (see `tl plugins list`)"),
    ConfigKey("seed", "integer", default=None, nullable=True, minimum=0, maximum=2**32 - 1,
              help="random seed (initial weights, shuffling, augmentation); null = different every run"),
    ConfigKey("bad_images", "string", affects_model=False, default="skip", choices=("skip", "error"),
              help="unusable image files (empty, truncated, not an image): skip them with a warning, "
                   "or stop the run"),
    ConfigKey("max_image_pixels", "integer", default=40_000_000, minimum=10_000, maximum=2**31 - 1,
              help="largest image decoded, in pixels after a JPEG's reduced-scale decoding (so camera JPEGs of any "
                   "size are used); larger images (big PNGs, 16-bit scans) are skipped with a warning"),
    ConfigKey("block_plugins", "list", affects_model=False, default=(), convert=lambda value, base_dir: plugin_names(value),
              help="names of plugins never to load for this configuration (see `tl plugins list`)"),
    ConfigKey("preprocessing", "any", default=None, nullable=True, convert=_preprocessing,
              help="how pixels become input: mobilenet_v2 = [-1, 1], unit = [0, 1], none = [0, 255], imagenet = "
                   'ImageNet mean/std, or {"mean": [r, g, b], "std": [r, g, b]}; null = the framework\'s default'),
    ConfigKey("learning_rate", "number", default=0.001, minimum=1e-8, maximum=10.0,
              help="Adam learning rate of the new head"),
    ConfigKey("dropout", "number", default=0.2, minimum=0.0, maximum=0.9,
              help="dropout before the new head"),
    ConfigKey("weight_decay", "number", default=0.0, minimum=0.0, maximum=1.0,
              help="L2 penalty on the head's weights (added to their gradient, as Adam's weight_decay does)"),
    ConfigKey("label_smoothing", "number", default=0.0, minimum=0.0, maximum=0.5,
              help="share of each training label spread evenly over all classes"),
    ConfigKey("head_search", "any", default="auto", convert=_head_search,
              help="choose learning_rate, weight_decay, label_smoothing and epochs (those the configuration does not "
                   "set) by cross-validation on the training images' cached features: auto (when the base is "
                   "frozen and features are computed once), true, or false (the configured values exactly)"),
    ConfigKey("mixed_precision", "any", affects_model=False, default="auto", convert=_mixed_precision,
              help='float16 compute, float32 weights: "auto" (on GPUs that benefit, with tensor cores), true or '
                   "false; the saved model is float32 either way"),
    ConfigKey("augmentation", "list", default=(), convert=_augmentation,
              help="random changes to training images, any of flip, crop, rotation, zoom, contrast, brightness"),
    ConfigKey("augmentation_views", "any", default="auto", convert=_views,
              help="frozen base: features of this many augmented views of each training image are computed once "
                   "(flip and crop, or the augmentation given), and each epoch trains on one view per image; "
                   '"auto": 1 to 3 when classes have 50 training images or fewer, else 0; '
                   "0 with augmentation: fresh changes every epoch, images through the base every epoch"),
    ConfigKey("fine_tune_layers", "integer", default=0, minimum=0, maximum=100000,
              help="also train the last N layers of the base (BatchNorm stays frozen); 0 = frozen base"),
    ConfigKey("feature_cache", "string", affects_model=False, default="auto", choices=("auto", "memory", "disk", "off"),
              help="frozen base without augmentation: compute features once, in memory or on disk "
                   "(auto: memory when small); off = run the base every epoch"),
    ConfigKey("early_stopping_patience", "integer", default=0, minimum=0, maximum=100000,
              help="stop when the monitored loss has not improved for this many epochs, and keep the best epoch's "
                   "weights; 0 = train every epoch"),
    ConfigKey("early_stopping_monitor", "string", default="holdout", choices=("holdout", "validation"),
              help="what early stopping watches: holdout = a part of the training images (the validation images "
                   "then only measure), validation = the validation folder (its Top-1 is then optimistic)"),
    ConfigKey("holdout_fraction", "number", default=0.1, minimum=0.01, maximum=0.5,
              help="share of each class's training images held out for early stopping"),
    ConfigKey("learning_rate_schedule", "string", default="constant", choices=("constant", "cosine"),
              help="constant, or cosine decay to 0 over the training"),
    ConfigKey("warmup_epochs", "integer", default=0, minimum=0, maximum=100000,
              help="epochs over which the learning rate rises linearly from 0 before the schedule"),
    ConfigKey("data_check", "boolean", default=True,
              help="check the dataset on the features computed anyway: the same picture twice (across or within the "
                   "splits, or under two labels), likely wrong labels, too few images and imbalance; reported, never "
                   "changed (tl check runs it alone)"),
    ConfigKey("class_weight", "any", default=None, nullable=True, convert=_class_weight,
              help='weigh classes in the loss: "balanced" (by inverse frequency) or {"class name": weight}'),
    ConfigKey("fine_tune_epochs", "integer", default=0, minimum=0, maximum=100000,
              help="with fine_tune_layers: first train the head for `epochs` on the frozen base, then unfreeze the "
                   "last fine_tune_layers layers for this many more epochs; 0 = one phase"),
    ConfigKey("fine_tune_learning_rate", "number", default=None, nullable=True, minimum=1e-9, maximum=10.0,
              help="learning rate of the fine-tuning phase; null = learning_rate / 10"),
    ConfigKey("quantize", "boolean", affects_model=False, default=False,
              help="after training, also quantize for the IMX500 (as `tl quantize` does)"),
    ConfigKey("quantization_images", "integer", affects_model=False, default=128, minimum=1, maximum=1000000,
              help="training images used to calibrate the quantization"),
    ConfigKey("quantization_method", "string", affects_model=False, default="ptq", choices=("ptq", "gptq"),
              help="ptq = post-training quantization (fast); gptq = gradient-based PTQ (slower, sometimes more "
                   "accurate)"),
    ConfigKey("gptq_epochs", "integer", affects_model=False, default=10, minimum=1, maximum=100000,
              help='passes over the calibration images with "quantization_method": "gptq"'),
    ConfigKey("tflite", "boolean", affects_model=False, default=False,
              help="when quantizing, also write TFLite models (float, and int8 with uint8 input) for other targets, "
                   "evaluated like the rest (framework keras)"),
    ConfigKey("quantization_max_drop", "number", affects_model=False, default=0.02, minimum=0.0, maximum=1.0,
              help="warn when quantization lowers Top-1 accuracy by more than this (0.02 = 2 points)"),
)


NEUTRAL_CORE_KEYS = frozenset(key.name for key in CORE_KEYS if not key.affects_model)
"""The core's keys the trained model does not depend on."""

SHARED_KEYS = (
    ConfigKey("dataset_format", "string", default="auto", choices=("auto", "folder", "csv", "jsonl"),
              help="how the dataset paths are read: auto (a .csv or .jsonl file is a listing, a folder has one "
                   "sub-folder per class), or the format forced"),
    ConfigKey("base_model", "string", default="mobilenet_v2",
              help="the network to transfer-learn from, built by name: mobilenet_v2, efficientnet_b0, resnet18, ... "
                   "(`tl models` lists each framework's); source_keras_model or source_torch_model gives your own"),
    ConfigKey("weights", "any", default="imagenet", nullable=True, convert=_weights, starter=DEFAULT,
              help='weights of the base_model: "imagenet" (the library\'s, downloaded once, or a copy already in its '
                   "cache), null (random) or a local weights file of that network without its head"),
    ConfigKey("mobilenet_alpha", "number", default=1.0, choices=MOBILENET_ALPHAS,
              help="width multiplier of MobileNetV2 (base_model mobilenet_v2 only)"),
    ConfigKey("distribute", "string", default="auto", choices=("auto", "mirrored", "multi_worker"),
              help="devices and workers: auto (the engine's environment when it is set: torchrun's variables, or "
                   "TF_CONFIG; else all local GPUs, or the CPU), mirrored (one process on every local device) or "
                   "multi_worker (that environment is required)"),
    ConfigKey("worker_timeout", "integer", affects_model=False, default=300, minimum=5, maximum=86400,
              help="seconds a worker waits for the others (to start, or at a step) before the run stops"),
    ConfigKey("remove_top", "any", default="auto", convert=_remove_top,
              help='the base model\'s classification layers: "auto" removes its trailing ones (Dense or Linear, '
                   "Dropout, Softmax, Flatten), false removes nothing (the model's output is the features)"),
)
"""Keys several plugins read: each returns the ones it honours from ``tl_config_keys`` (the base models of both
framework packs read ``base_model``, ``weights`` and ``mobilenet_alpha``, their workers' plugins ``distribute`` and
``worker_timeout``, both top removals ``remove_top``)."""

SHARED = {key.name: key for key in SHARED_KEYS}


def starter_values() -> dict[str, Any]:
    """What ``tl init`` writes beside the dataset's paths and the seed: the keys whose :attr:`ConfigKey.starter`
    says so, in declaration order."""
    return {key.name: key.default if key.starter is DEFAULT else key.starter
            for key in (*CORE_KEYS, *SHARED_KEYS) if key.starter is not OMITTED}
