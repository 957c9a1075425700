"""configuration.json: the keys, their checks, and the validated ``RunConfig``."""

import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from tlcore.errors import ConfigError
from tlcore.frameworks import DEFAULT_FRAMEWORK
from tlcore.paths import resolve_path, type_name

REQUIRED = object()
"""Default of a key that must be present."""

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

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"ConfigKey {self.name!r}: type must be one of {TYPES}")

    @property
    def required(self):
        return self.default is REQUIRED

    def describe(self):
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

    def check(self, value, base_dir, source):
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

    def _converted(self, value, base_dir, where):
        if self.convert is None:
            return value
        try:
            return self.convert(value, base_dir)
        except ValueError as exc:
            raise ConfigError(f"{where} {exc}") from None


def _weights(value, base_dir):
    if value == "imagenet":
        return value
    if not isinstance(value, str):
        raise ValueError('must be "imagenet", null or the path of a weights file')
    if value.strip().lower() in ("imagenet", "none", "null", "random"):
        raise ValueError(f'is "{value}"; write "imagenet" (lower case) or null (without quotes) for random weights')
    return resolve_path(value, base_dir=base_dir, key="weights", kind="file")


def _mixed_precision(value, base_dir):
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError(f'is {json.dumps(value)}; use "auto" (on where the device benefits), true or false')


def _preprocessing(value, base_dir):
    """A preset name, or ``{"mean": [r, g, b], "std": [r, g, b], "channel_order": "RGB"}`` in pixel units."""
    from tlcore.preprocessing import CHANNEL_ORDERS, PRESETS

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
    if min(value["std"]) <= 0:
        raise ValueError('"std" values must be greater than 0')
    order = value.get("channel_order", "RGB")
    if order not in CHANNEL_ORDERS:
        raise ValueError(f'"channel_order" must be one of {", ".join(CHANNEL_ORDERS)}')
    return {"mean": [float(v) for v in value["mean"]], "std": [float(v) for v in value["std"]], "channel_order": order}


def _augmentation(value, base_dir):
    from tlcore.images import AUGMENTATIONS

    for item in value:
        if item not in AUGMENTATIONS:
            close = difflib.get_close_matches(str(item), AUGMENTATIONS, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise ValueError(f"has {json.dumps(item)}; {hint}use any of {', '.join(AUGMENTATIONS)}")
    return tuple(dict.fromkeys(value))


MAX_VIEWS = 8


def _views(value, base_dir):
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_VIEWS):
        return value
    raise ValueError(f'is {json.dumps(value)}; use "auto" or a number of views from 0 to {MAX_VIEWS}')


def _head_search(value, base_dir):
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError(f'is {json.dumps(value)}; use "auto" (when the base is frozen and features are computed once), '
                     "true or false")


def _class_weight(value, base_dir):
    if value == "balanced":
        return value
    if isinstance(value, str):
        raise ValueError(f'is "{value}"; use "balanced" or an object of class name -> weight')
    if not isinstance(value, dict) or not value:
        raise ValueError('must be "balanced", null or an object of class name -> weight, e.g. {"cat": 2.0}')
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f'weight of "{name}" is {json.dumps(weight)}; weights are numbers of 0 or more')
    return {name: float(weight) for name, weight in value.items()}


MOBILENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
TPC_VERSIONS = ("1.0", "1.0_lut", "4.0", "4.1", "5.0")
"""The IMX500 target platform capabilities of edge-mdt-tpc 1.3 (Sony's converter 3.18 converts all of them)."""

CORE_KEYS = (
    ConfigKey("source_keras_model", "path", default=None, nullable=True, path_kind="file_or_dir",
              help="base model: Keras SavedModel folder, .h5 or .keras file; empty = MobileNetV2 (framework keras)"),
    ConfigKey("dataset_training_dir", "path", path_kind="dir",
              help="training images, one sub-folder per class"),
    ConfigKey("dataset_validation_dir", "path", path_kind="dir",
              help="validation images, same layout"),
    ConfigKey("evaluate_label_file", "path", default=None, nullable=True, path_kind="file",
              help="labels.json (class name -> id); default: labels.json beside the training folder"),
    ConfigKey("batch_size", "integer", default=32, minimum=1, maximum=65536,
              help="images per training step (power of two recommended)"),
    ConfigKey("input_tensor_size", "integer", default=224, minimum=1, maximum=4096,
              help="side of the square input tensor, in pixels (the model says how small it may be: 32 for "
                   "Keras' MobileNetV2)"),
    ConfigKey("epochs", "integer", default=10, minimum=1, maximum=100000,
              help="passes over the training images"),
    ConfigKey("output_dir", "path", path_kind="output_dir",
              help="where saved_model/ is written; created if missing"),
    ConfigKey("evaluate_result_dir", "path", path_kind="output_dir",
              help="where results.json is written; created if missing"),
    ConfigKey("framework", "string", default=DEFAULT_FRAMEWORK,
              help="the framework that loads, trains and saves the model, e.g. keras or torch (see `tl plugins list`)"),
    ConfigKey("seed", "integer", default=None, nullable=True, minimum=0, maximum=2**32 - 1,
              help="random seed (initial weights, shuffling, augmentation); null = different every run"),
    ConfigKey("bad_images", "string", default="skip", choices=("skip", "error"),
              help="unusable image files (empty, truncated, not an image): skip them with a warning, "
                   "or stop the run"),
    ConfigKey("block_plugins", "list", default=(), convert=lambda value, base_dir: _plugin_names(value),
              help="names of plugins never to load for this configuration (see `tl plugins list`)"),
    ConfigKey("weights", "any", default="imagenet", nullable=True, convert=_weights,
              help='weights of the default MobileNetV2: "imagenet" (downloaded once), null (random) or a local '
                   "weights file"),
    ConfigKey("mobilenet_alpha", "number", default=1.0, choices=MOBILENET_ALPHAS,
              help="width multiplier of the default MobileNetV2"),
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
    ConfigKey("distribute", "string", default="auto", choices=("auto", "mirrored", "multi_worker"),
              help="devices and workers: auto (the engine's environment when it is set: torchrun's variables, or "
                   "TF_CONFIG; else all local GPUs, or the CPU), mirrored (one process on every local device) or "
                   "multi_worker (that environment is required)"),
    ConfigKey("worker_timeout", "integer", default=300, minimum=5, maximum=86400,
              help="seconds a worker waits for the others (to start, or at a step) before the run stops"),
    ConfigKey("mixed_precision", "any", default="auto", convert=_mixed_precision,
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
    ConfigKey("feature_cache", "string", default="auto", choices=("auto", "memory", "disk", "off"),
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
    ConfigKey("tensorboard", "boolean", default=False,
              help="also write TensorBoard logs of the epochs into evaluate_result_dir/tensorboard"),
    ConfigKey("quantize", "boolean", default=False,
              help="after training, also quantize for the IMX500 (as `tl quantize` does)"),
    ConfigKey("quantization_images", "integer", default=128, minimum=1, maximum=1000000,
              help="training images used to calibrate the quantization"),
    ConfigKey("quantization_method", "string", default="ptq", choices=("ptq", "gptq"),
              help="ptq = post-training quantization (fast); gptq = gradient-based PTQ (slower, sometimes more "
                   "accurate)"),
    ConfigKey("gptq_epochs", "integer", default=10, minimum=1, maximum=100000,
              help='passes over the calibration images with "quantization_method": "gptq"'),
    ConfigKey("tpc_version", "string", default="4.0", choices=TPC_VERSIONS,
              help="IMX500 target platform capabilities: 1.0 for converter 3.14+, 4.0 (and 4.1) for 3.16+, "
                   "5.0 for 3.17+"),
    ConfigKey("quantization_max_drop", "number", default=0.02, minimum=0.0, maximum=1.0,
              help="warn when quantization lowers Top-1 accuracy by more than this (0.02 = 2 points)"),
    ConfigKey("imx500_input_persistency", "boolean", default=True,
              help="keep the input image readable on the device; false saves chip memory for a large model"),
    ConfigKey("tflite", "boolean", default=False,
              help="when quantizing, also write TFLite models (float, and int8 with uint8 input) for other targets, "
                   "evaluated like the rest (framework keras)"),
)

QUANTIZATION_KEYS = ("quantize", "quantization_images", "quantization_method", "gptq_epochs", "tpc_version",
                     "quantization_max_drop", "imx500_input_persistency", "tflite")
UNRELATED_KEYS = (*QUANTIZATION_KEYS, "block_plugins", "evaluate_result_dir", "bad_images", "feature_cache",
                  "mixed_precision")
"""Keys that may change between training and quantizing (and resuming): they do not change the trained model."""


def plugin_config_keys(manager, errors=None):
    """The :class:`ConfigKey` s every plugin declares (``tl_config_keys``), checked.

    A plugin returning something else raises PluginError naming it, unless ``errors``
    is a dict: then the error is stored there under the plugin's name.
    """
    from tlcore.calls import call_all
    from tlcore.errors import PluginError

    keys = {}
    for plugin, declared in call_all(manager, "tl_config_keys", errors=errors):
        try:
            if not isinstance(declared, (list, tuple)) or not all(isinstance(k, ConfigKey) for k in declared):
                raise PluginError(
                    f'plugin "{plugin}" returned {type(declared).__name__} from tl_config_keys; '
                    "it must return a list of tlcore.config.ConfigKey"
                )
            for key in declared:
                if not key.required:
                    try:
                        json.dumps(key.default)
                    except (TypeError, ValueError):
                        raise PluginError(
                            f'plugin "{plugin}": the default of configuration key "{key.name}" is not a JSON '
                            "value; declare a string, number, boolean, list or null"
                        ) from None
        except PluginError as exc:
            if errors is None:
                raise
            errors[plugin] = str(exc)
            continue
        keys[plugin] = list(declared)
    return keys


def _plugin_names(value):
    """``block_plugins`` as a tuple; ValueError if it is not a list of names."""
    if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
        raise ValueError('must be a list of plugin names, e.g. ["metrics.per_class"]')
    return tuple(value)


@dataclass(frozen=True)
class Configuration:
    """A configuration as read: its keys and values, where relative paths start, and the keys
    that ``--set`` (or the Python API's keyword arguments) gave."""

    data: Mapping[str, Any]
    path: Path
    """configuration.json (its folder is where relative paths start), or ``<current folder>/configuration``
    for a configuration given as a dict."""
    overridden: frozenset = frozenset()
    texts: Mapping[str, str] = field(default_factory=dict)
    """The text typed after ``--set key=``, by key: a text key (``"type": "string"`` or ``"path"``) takes it
    as it is when it reads as another JSON value (``--set tpc_version=4.0`` is ``"4.0"``, not 4.0)."""
    override_label: str = "--set"
    """Where the overrides came from, in messages: ``--set``, or ``keyword argument`` (the Python API)."""

    @property
    def name(self):
        return self.path.name


class SetText(str):
    """A value typed on the command line (``--set key=TEXT``), not yet read: :func:`read_configuration`
    reads it as a JSON literal, else takes it as text. Plain values (the Python API's) are used as they are."""

    def value(self):
        try:
            return json.loads(self)
        except (ValueError, RecursionError):  # not JSON (or nested too deep): the text itself
            return str(self)


def parse_override(text):
    """``key=value`` of ``--set``: ``(key, value)``, the value a :class:`SetText` (read as a JSON literal, else
    as text, when the configuration is read)."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise ConfigError(f"--set {text}: write key=value, e.g. --set epochs=5 or --set weights=null")
    return key.strip(), SetText(value)


def read_configuration(source, overrides=None):
    """A :class:`Configuration` from a configuration file's path, or from a dict (whose relative paths
    start at the current folder), with ``overrides`` (key -> value; a :class:`SetText` is read as ``--set``
    reads it) on top."""
    if isinstance(source, Mapping):
        data, path = dict(source), Path.cwd() / "configuration"
    else:
        path = Path(source).absolute()
        data = read_json_object(path)
    overrides = dict(overrides or {})
    texts = {key: str(value) for key, value in overrides.items() if isinstance(value, SetText)}
    data.update((key, value.value() if isinstance(value, SetText) else value) for key, value in overrides.items())
    label = "--set" if texts or not overrides else "keyword argument"
    return Configuration(data=data, path=path, overridden=frozenset(overrides), texts=texts, override_label=label)


def _as_typed(key_type, name, value, texts):
    """``value`` of a text key given with ``--set``: the typed text when it read as another JSON value."""
    if key_type in ("string", "path") and name in texts and value is not None and not isinstance(value, str):
        return texts[name]
    return value


def read_selection(configuration):
    """``(block_plugins, framework)`` of a configuration (a :class:`Configuration` or a file's path), read
    before plugins are loaded.

    Plugins declare configuration keys, so the full check needs them loaded; which
    ones to load, and which framework's keys apply, must be known first. Errors
    here are the same as :func:`load_config`'s.
    """
    if not isinstance(configuration, Configuration):
        configuration = read_configuration(configuration)
    data = configuration.data

    def source(key):
        return configuration.override_label if key in configuration.overridden else configuration.name

    try:
        blocked = _plugin_names(data.get("block_plugins", []))
    except ValueError as exc:
        raise ConfigError(f'{source("block_plugins")}: "block_plugins" {exc}') from None
    framework = _as_typed("string", "framework", data.get("framework", DEFAULT_FRAMEWORK), configuration.texts)
    if not isinstance(framework, str):
        raise ConfigError(f'{source("framework")}: "framework" must be a string, not {type_name(framework)} '
                          f"({json.dumps(framework)})")
    return blocked, framework


@dataclass(frozen=True)
class RunConfig:
    """A validated configuration: typed values, absolute paths."""

    config_file: Path
    dataset_training_dir: Path
    dataset_validation_dir: Path
    evaluate_label_file: Path
    output_dir: Path
    evaluate_result_dir: Path
    source_keras_model: Path | None = None
    batch_size: int = 32
    input_tensor_size: int = 224
    epochs: int = 10
    framework: str = DEFAULT_FRAMEWORK
    seed: int | None = None
    bad_images: str = "skip"
    block_plugins: tuple = ()
    weights: str | Path | None = "imagenet"
    mobilenet_alpha: float = 1.0
    preprocessing: str | Mapping[str, Any] | None = None
    learning_rate: float = 0.001
    dropout: float = 0.2
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    data_check: bool = True
    head_search: bool | str = "auto"
    """``"auto"``, true or false as configured; a framework whose keys do not include it never searches."""
    distribute: str = "auto"
    worker_timeout: int = 300
    mixed_precision: bool | str = "auto"
    """``"auto"``, true or false as configured; a run resolves ``"auto"`` to a bool for the devices it has."""
    augmentation: tuple = ()
    augmentation_views: int | str = "auto"
    """``"auto"`` or a number, as configured; a run resolves it for its dataset (:func:`tlcore.features.view_count`)."""
    fine_tune_layers: int = 0
    feature_cache: str = "auto"
    early_stopping_patience: int = 0
    early_stopping_monitor: str = "holdout"
    holdout_fraction: float = 0.1
    learning_rate_schedule: str = "constant"
    warmup_epochs: int = 0
    class_weight: str | Mapping[str, float] | None = None
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float | None = None
    tensorboard: bool = False
    quantize: bool = False
    quantization_images: int = 128
    quantization_method: str = "ptq"
    gptq_epochs: int = 10
    tpc_version: str = "4.0"
    quantization_max_drop: float = 0.02
    imx500_input_persistency: bool = True
    tflite: bool = False
    given_keys: frozenset = frozenset()
    """The keys the configuration file sets (the others have their defaults)."""
    set_keys: frozenset = frozenset()
    """The keys given with ``--set`` (or the Python API's keyword arguments), for messages."""
    set_label: str = "--set"
    """How messages name where :attr:`set_keys` came from: ``--set`` or ``keyword argument``."""
    ignored_keys: tuple = ()
    """Unknown keys ignored because plugins were blocked or disabled (``ignore_unknown``)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Values of keys declared by plugins (``tl_config_keys``), defaults filled in."""

    def __post_init__(self):
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def saved_model_dir(self):
        return self.output_dir / "saved_model"

    @property
    def results_file(self):
        return self.evaluate_result_dir / "results.json"

    def to_dict(self):
        """JSON-ready form: every key with its resolved value."""
        data = {key.name: _jsonable(getattr(self, key.name)) for key in CORE_KEYS}
        data.update((name, _jsonable(value)) for name, value in self.options.items())
        return data


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def read_json_object(path, what="configuration file"):
    """Read a UTF-8 JSON object from ``path`` with one-line errors; duplicate keys are refused."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give the path of the JSON file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path.name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None

    def no_duplicates(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise ConfigError(f'{path.name}: key "{key}" appears twice; keep one')
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        hint = " (a comma before it?)" if exc.msg.startswith("Expecting property name") else ""
        raise ConfigError(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}"
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits, or nesting too deep
        raise ConfigError(f"{path.name} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must hold a JSON object ({{...}}), not {type_name(data)}")
    return data


def load_config(path, plugin_keys=(), ignore_unknown=False, *, foreign_keys=None, frameworks=None):
    """Read, check and resolve configuration.json (or a :class:`Configuration`); raise ConfigError on the
    first problem.

    Checks run in the order the SDK specifies: the file, then unknown and missing
    keys, then values, then the model and training paths before the validation path.

    :param plugin_keys: the :class:`ConfigKey` s of the plugins that take part in the run.
    :param ignore_unknown: ignore (and list in ``ignored_keys``) unknown keys that are not
        near-misses of a known key: plugins were blocked or disabled.
    :param foreign_keys: ``{key: frameworks}`` of keys that plugins of other frameworks
        declare; setting one is an error that says which framework it belongs to.
    :param frameworks: the names of the available frameworks; ``framework`` must be one.
    """
    configuration = path if isinstance(path, Configuration) else read_configuration(path)
    return config_from_dict(configuration.data, configuration.path, plugin_keys, ignore_unknown,
                            foreign_keys=foreign_keys, frameworks=frameworks, overridden=configuration.overridden,
                            texts=configuration.texts, override_label=configuration.override_label)


def config_from_dict(data, path, plugin_keys=(), ignore_unknown=False, *, foreign_keys=None, frameworks=None,
                     overridden=frozenset(), texts=None, override_label="--set"):
    """:func:`load_config` for ``data`` already read; relative paths start at ``path``'s folder, except in
    the ``overridden`` keys (``--set``), whose relative paths start at the current folder. ``texts`` are
    the typed texts of ``--set`` values (see :attr:`Configuration.texts`)."""
    path = Path(path).absolute()
    data = dict(data)
    texts = dict(texts or {})
    source = path.name
    origin = {name: override_label if name in overridden else source for name in data}
    schema = data.pop(SCHEMA_KEY, None)
    if schema is not None and not isinstance(schema, str):
        raise ConfigError(f'{origin[SCHEMA_KEY]}: "{SCHEMA_KEY}" must be the path or URL of tl\'s JSON Schema '
                          "(tl config schema > tl.schema.json), or left out")
    keys = {key.name: key for key in CORE_KEYS}
    for key in plugin_keys:
        if key.name in keys:
            raise ConfigError(f'configuration key "{key.name}" is declared twice (by the core or two plugins)')
        keys[key.name] = key
    ignored = []
    foreign_keys = foreign_keys or {}
    for name in [name for name in data if name not in keys]:
        if name in foreign_keys:
            owners = " or ".join(f'"{framework}"' for framework in foreign_keys[name])
            raise ConfigError(
                f'{origin.get(name, source)}: "{name}" is a key of framework {owners}, but "framework" is '
                f'"{data.get("framework", DEFAULT_FRAMEWORK)}"; remove the key or change "framework"'
            )
        close = difflib.get_close_matches(name, list(keys), n=1, cutoff=0.6)
        if ignore_unknown and not close:  # a blocked plugin's key is expected; a near-miss is still a typo
            ignored.append(name)
            del data[name]
            continue
        hint = f'did you mean "{close[0]}"?' if close else "valid keys: " + ", ".join(sorted(keys))
        raise ConfigError(f'{origin.get(name, source)}: unknown key "{name}"; {hint}')
    for key in keys.values():
        if key.required and key.name not in data:
            raise ConfigError(f'{source}: missing required key "{key.name}" ({key.help})')

    base_dir = path.parent.resolve()  # a link to the configuration's folder is not a link in a configured path
    values = {}
    for key in keys.values():
        if key.name in overridden and key.name in data:
            value = _as_typed(key.type, key.name, data[key.name], texts)
            try:
                values[key.name] = key.check(value, Path.cwd().resolve(), override_label)
            except ConfigError as exc:  # the paths' hint names the configuration's folder; these start here
                raise ConfigError(str(exc).replace("relative paths start at the configuration file's folder",
                                                   f"relative paths given with {override_label} start at the "
                                                   "current folder")) from None
        elif key.name in data:
            values[key.name] = key.check(data[key.name], base_dir, source)
        elif key.type == "path" and key.default is not None:  # path defaults resolve like given paths
            values[key.name] = key.check(key.default, base_dir, f"{source} (default)")
        else:
            values[key.name] = key.default
    if frameworks is not None and values["framework"] not in frameworks:
        from tlcore.frameworks import select_framework

        select_framework(frameworks, values["framework"], origin.get("framework", source))

    for output in ("output_dir", "evaluate_result_dir"):
        for dataset in ("dataset_training_dir", "dataset_validation_dir"):
            if values[output].is_relative_to(values[dataset]):
                raise ConfigError(
                    f'{source}: "{output}" ({values[output]}) is inside "{dataset}", where the next run would '
                    "take it for a class folder; choose a folder outside the dataset"
                )
    label_file = values["evaluate_label_file"]
    if label_file is None:
        label_file = values["dataset_training_dir"].parent / "labels.json"
        if not label_file.is_file():
            raise ConfigError(
                f"labels file not found: {label_file}; put labels.json beside the training folder "
                'or set "evaluate_label_file"'
            )
    core = {key.name: values.pop(key.name) for key in CORE_KEYS}
    core["evaluate_label_file"] = label_file
    return RunConfig(config_file=path, options=values, ignored_keys=tuple(ignored), given_keys=frozenset(data),
                     set_keys=frozenset(name for name in overridden if name in data), set_label=override_label,
                     **core)


def check_framework_keys(config, framework):
    """Refuse optional core keys that ``framework`` does not honour, when the configuration sets them."""
    from tlcore.frameworks import OPTIONAL_KEYS

    for name in OPTIONAL_KEYS:
        if name in config.given_keys and name not in framework.keys and getattr(config, name) is not None:
            hint = framework.key_hints.get(name, "remove it or choose another framework")
            source = config.set_label if name in config.set_keys else config.config_file.name
            raise ConfigError(f'{source}: "{name}" does not apply to framework "{framework.name}"; {hint}')
