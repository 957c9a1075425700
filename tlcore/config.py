"""configuration.json read and checked against the keys (:mod:`tlcore.keys`): the validated ``RunConfig``."""

from __future__ import annotations

import difflib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from tlcore.calls import call_all
from tlcore.errors import ConfigError, PluginError
from tlcore.frameworks import DEFAULT_FRAMEWORK, select_framework
from tlcore.keys import CORE_KEYS, NEUTRAL_CORE_KEYS, REQUIRED, SCHEMA_KEY, SHARED_KEYS, ConfigKey, plugin_names
from tlcore.paths import type_name

if TYPE_CHECKING:
    from tlcore.frameworks import Framework
    from tlcore.pluginmanager import PluginManager

__all__ = ["CORE_KEYS", "REQUIRED", "SCHEMA_KEY", "SHARED_KEYS", "ConfigKey", "RunConfig", "load_config",
           "plugin_config_keys", "read_configuration"]

def plugin_config_keys(manager: PluginManager, errors: dict[str, str] | None = None) -> dict[str, list[ConfigKey]]:
    """The :class:`ConfigKey` s every plugin declares (``tl_config_keys``), checked.

    A plugin returning something else raises PluginError naming it, unless ``errors``
    is a dict: then the error is stored there under the plugin's name.
    """
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


SAVED_MODEL = "saved_model"
"""The model's folder in ``output_dir``, which every run replaces whole."""


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
    def name(self) -> str:
        return self.path.name


class SetText(str):
    """A value typed on the command line (``--set key=TEXT``), not yet read: :func:`read_configuration`
    reads it as a JSON literal, else takes it as text. Plain values (the Python API's) are used as they are."""

    def value(self) -> Any:
        try:
            return json.loads(self)
        except (ValueError, RecursionError):  # not JSON (or nested too deep): the text itself
            return str(self)


def parse_override(text: str) -> tuple[str, SetText]:
    """``key=value`` of ``--set``: ``(key, value)``, the value a :class:`SetText` (read as a JSON literal, else
    as text, when the configuration is read)."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise ConfigError(f"--set {text}: write key=value, e.g. --set epochs=5 or --set weights=null")
    return key.strip(), SetText(value)


def read_configuration(source: str | Path | Mapping[str, Any],
                       overrides: Mapping[str, Any] | None = None) -> Configuration:
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


def _as_typed(key_type: str, name: str, value: Any, texts: Mapping[str, str]) -> Any:
    """``value`` of a text key given with ``--set``: the typed text when it read as another JSON value."""
    if key_type in ("string", "path") and name in texts and value is not None and not isinstance(value, str):
        return texts[name]
    return value


def read_selection(configuration: Configuration | str | Path) -> tuple[tuple[str, ...], str]:
    """``(block_plugins, framework)`` of a configuration (a :class:`Configuration` or a file's path), read
    before plugins are loaded.

    Plugins declare configuration keys, so the full check needs them loaded; which
    ones to load, and which framework's keys apply, must be known first. Errors
    here are the same as :func:`load_config`'s.
    """
    if not isinstance(configuration, Configuration):
        configuration = read_configuration(configuration)
    data = configuration.data

    def source(key: str) -> str:
        return configuration.override_label if key in configuration.overridden else configuration.name

    try:
        blocked = plugin_names(data.get("block_plugins", []))
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
    evaluate_label_file: Path | None
    """labels.json; None for a dataset listed in a file without one beside it (ids then in sorted order)."""
    output_dir: Path
    evaluate_result_dir: Path
    batch_size: int = 32
    input_tensor_size: int = 224
    epochs: int = 10
    framework: str = DEFAULT_FRAMEWORK
    seed: int | None = None
    bad_images: str = "skip"
    max_image_pixels: int = 40_000_000
    block_plugins: tuple = ()
    preprocessing: str | Mapping[str, Any] | None = None
    learning_rate: float = 0.001
    dropout: float = 0.2
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    data_check: bool = True
    head_search: bool | str = "auto"
    """``"auto"``, true or false as configured; a framework whose keys do not include it never searches."""
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
    quantize: bool = False
    quantization_images: int = 128
    quantization_method: str = "ptq"
    gptq_epochs: int = 10
    quantization_max_drop: float = 0.02
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
    """Values of keys declared by plugins (``tl_config_keys``), defaults filled in: ``config.options["tpc_version"]``.
    A plugin reads its own keys here; the core reads a plugin's key with ``options.get`` (the plugin may be
    blocked)."""
    neutral_keys: frozenset = frozenset()
    """The keys the trained model does not depend on (:attr:`tlcore.keys.ConfigKey.affects_model` false): they may
    change between training and quantizing or resuming."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def saved_model_dir(self) -> Path:
        return self.output_dir / SAVED_MODEL

    @property
    def results_file(self) -> Path:
        return self.evaluate_result_dir / "results.json"

    @property
    def neutral(self) -> frozenset:
        """Every key the trained model does not depend on: the core's and the plugins' (:attr:`neutral_keys`)."""
        return self.neutral_keys | NEUTRAL_CORE_KEYS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every key with its resolved value."""
        data = {key.name: _jsonable(getattr(self, key.name)) for key in CORE_KEYS}
        data.update((name, _jsonable(value)) for name, value in self.options.items())
        return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


MAX_JSON_BYTES = 16 * 2**20
"""The largest configuration or labels file tl reads: a mistaken path (a dataset archive, a log) is refused, not
read until memory runs out."""


def read_json_object(path: str | Path, what: str = "configuration file") -> dict[str, Any]:
    """Read a UTF-8 JSON object from ``path`` with one-line errors; duplicate keys are refused."""
    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"{what} {path} is a symbolic link; symbolic links are not allowed, give the real file")
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give the path of the JSON file")
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a FIFO would block, /dev/zero never end
            raise ConfigError(f"{what} {path} is not a regular file (a device, FIFO or socket); give a JSON file")
        if status.st_size > MAX_JSON_BYTES:
            raise ConfigError(f"{what} {path} has {status.st_size:,} bytes; a JSON file of tl's is at most "
                              f"{MAX_JSON_BYTES // 2**20} MiB: is it the right file?")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(raw) > MAX_JSON_BYTES:  # grew while read
        raise ConfigError(f"{what} {path} has more than {MAX_JSON_BYTES // 2**20} MiB; is it the right file?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path.name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise ConfigError(f'{path.name}: key "{key}" appears twice; keep one')
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        if text[exc.pos:exc.pos + 2] in ("//", "/*") or text[exc.pos:exc.pos + 1] == "#":
            hint = " (JSON has no comments: remove it)"
        elif exc.msg.startswith("Expecting property name"):
            hint = " (a comma before it?)"
        else:
            hint = ""
        raise ConfigError(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}"
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits, or nesting too deep
        raise ConfigError(f"{path.name} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must hold a JSON object ({{...}}), not {type_name(data)}")
    return data


def load_config(path: str | Path | Configuration, plugin_keys: Iterable[ConfigKey] = (), ignore_unknown: bool = False, *,
                foreign_keys: Mapping[str, Sequence[str]] | None = None,
                frameworks: Mapping[str, tuple[Framework, str]] | None = None) -> RunConfig:
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


def config_from_dict(data: Mapping[str, Any], path: str | Path, plugin_keys: Iterable[ConfigKey] = (),
                     ignore_unknown: bool = False, *, foreign_keys: Mapping[str, Sequence[str]] | None = None,
                     frameworks: Mapping[str, tuple[Framework, str]] | None = None,
                     overridden: frozenset[str] = frozenset(), texts: Mapping[str, str] | None = None,
                     override_label: str = "--set") -> RunConfig:
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
    core_names = set(keys)
    for key in plugin_keys:
        if key.name in keys and keys[key.name] != key:  # a shared key (tlcore.keys.SHARED_KEYS) may come twice
            raise ConfigError(f'configuration key "{key.name}" is declared twice, differently (by the core or two '
                              "plugins); a key several plugins read is declared once, in tlcore.keys.SHARED_KEYS")
        keys[key.name] = key
    ignored = []
    foreign_keys = foreign_keys or {}
    for name in [name for name in data if name not in keys]:
        if name in foreign_keys and data[name] in ("", None):  # e.g. the SDK's "source_keras_model": "" left in
            del data[name]
            continue
        if name in foreign_keys:
            chosen = data.get("framework", DEFAULT_FRAMEWORK)
            hint = _framework_hint(frameworks, chosen, name)
            if hint:
                raise ConfigError(f'{origin.get(name, source)}: "{name}" does not apply to framework "{chosen}"; {hint}')
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
    # The SDK's order: the model (a plugin's path, e.g. source_keras_model), then the core's keys (the training
    # folder before the validation folder), then the plugins' other keys.
    plugin_paths = [key for name, key in keys.items() if name not in core_names and key.type == "path"]
    for key in [*plugin_paths, *(key for key in keys.values() if key not in plugin_paths)]:
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
        select_framework(frameworks, values["framework"], origin.get("framework", source))

    for output in ("output_dir", "evaluate_result_dir"):
        for dataset in ("dataset_training_dir", "dataset_validation_dir"):
            if values[output].is_relative_to(values[dataset]):
                raise ConfigError(
                    f'{source}: "{output}" ({values[output]}) is inside "{dataset}", where the next run would '
                    "take it for a class folder; choose a folder outside the dataset"
                )
    saved_model = values["output_dir"] / SAVED_MODEL
    if values["evaluate_result_dir"].is_relative_to(saved_model):
        raise ConfigError(
            f'{source}: "evaluate_result_dir" ({values["evaluate_result_dir"]}) is inside {saved_model}, which every '
            'run replaces whole; choose a folder outside it'
        )
    label_file = values["evaluate_label_file"]
    if label_file is None:
        label_file = values["dataset_training_dir"].parent / "labels.json"
        if not label_file.is_file():
            if values["dataset_training_dir"].is_file():  # a listing: class names in it, ids in sorted order
                label_file = None
            else:
                raise ConfigError(
                    f"labels file not found: {label_file}; put labels.json beside the training folder "
                    'or set "evaluate_label_file"'
                )
    core = {key.name: values.pop(key.name) for key in CORE_KEYS}
    core["evaluate_label_file"] = label_file
    return RunConfig(config_file=path, options=values, ignored_keys=tuple(ignored), given_keys=frozenset(data),
                     neutral_keys=frozenset(key.name for key in keys.values() if not key.affects_model),
                     set_keys=frozenset(name for name in overridden if name in data), set_label=override_label,
                     **core)


def _framework_hint(frameworks: Mapping[str, tuple[Framework, str]] | None, name: str, key: str) -> str:
    """What framework ``name`` (of ``frameworks``, ``{name: (Framework, plugin)}``) says to a configuration that
    sets ``key``, which it does not honour; "" when it says nothing."""
    if not isinstance(frameworks, Mapping) or not isinstance(frameworks.get(name), tuple):
        return ""
    return frameworks[name][0].key_hints.get(key, "")
