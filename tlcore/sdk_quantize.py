"""``tl quantize`` on the configuration of the AITRIOS SDK's quantize notebook.

That notebook's configuration.json (recognised by ``dataset_image_dir`` or
``iteration_count``) names a trained Keras model (``source_keras_model``),
calibration images (``dataset_image_dir``, any folder structure; ``batch_size`` x
``iteration_count`` of them) and evaluation images (``evaluate_image_dir/<class>/
*.<evaluate_image_extension>`` with ``evaluate_label_file``). tl writes what the
notebook wrote, so the user's next steps keep working: ``output_dir/model.tflite``,
``output_dir/model_quantized.tflite`` and ``evaluate_result_dir/results.json`` with
``top_1_accuracy_keras``, ``top_1_accuracy_keras_quantized``, ``top_1_accuracy_tflite``
and ``top_1_accuracy_tflite_quantized``; beside them, tl's own IMX500 package in
``output_dir/imx500``.

The notebook calibrated with MobileNetV1's preprocessing (resize to 256, centre crop,
[-1, 1]) whatever the model, and evaluated the Keras models on [0, 1] input. tl
uses the preprocessing the model was trained with: ``preprocessing.json`` beside
a model tl trained, else the configuration's ``preprocessing``, else [0, 1], the
SDK training notebook's; it says which.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tlcore.calls import Hooks
from tlcore.config import CORE_KEYS, ConfigKey, RunConfig, read_json_object
from tlcore.dataset import DatasetIndex, Split
from tlcore.errors import ConfigError, DatasetError, OutputError
from tlcore.evaluation import evaluate_model
from tlcore.lock import command_line, output_lock
from tlcore.outputs import StagedDir, check_replaceable, flush, prepare_output_dir, publish_together, remove_if_empty
from tlcore.prepare import framework_keys
from tlcore.preprocessing import Preprocessing
from tlcore.quantization import (
    PACKAGE_FOLDER, RECORD, REQUIRED_HOOKS, QuantizationResult, combined, make_package, raw_input, report_drop,
    report_package, tflite_models, write_package_files,
)
from tlcore.registry import open_hooks

if TYPE_CHECKING:
    from tlcore.pluginmanager import PluginManager
    from tlcore.report import Reporter

MARKERS = ("dataset_image_dir", "iteration_count")
CALIBRATION_SUFFIXES = (".jpeg", ".jpg", ".bmp", ".png")
SDK_KEYS = (
    ConfigKey("source_keras_model", "path", path_kind="file_or_dir",
              help="the trained Keras model to quantize: a SavedModel folder or an .h5 file"),
    ConfigKey("dataset_image_dir", "path", path_kind="dir", help="calibration images (any folder structure)"),
    ConfigKey("batch_size", "integer", minimum=1, maximum=65536, help="calibration images per iteration"),
    ConfigKey("input_tensor_size", "integer", minimum=32, maximum=4096, help="side of the model's square input"),
    ConfigKey("iteration_count", "integer", minimum=1, maximum=100000, help="calibration iterations"),
    ConfigKey("output_dir", "path", path_kind="output_dir", help="where the TFLite models are written"),
    ConfigKey("evaluate_image_dir", "path", path_kind="dir", help="evaluation images, one folder per class"),
    ConfigKey("evaluate_image_extension", "string", help='extension of the evaluation images, e.g. "jpg"'),
    ConfigKey("evaluate_label_file", "path", path_kind="file", help="labels.json: class name -> id"),
    ConfigKey("evaluate_result_dir", "path", path_kind="output_dir", help="where results.json is written"),
)
TL_KEYS = ("framework", "seed", "bad_images", "preprocessing", "quantization_method", "gptq_epochs", "tpc_version",
           "quantization_max_drop", "imx500_input_persistency", "block_plugins")
"""tl's own keys that may refine the SDK's configuration."""


def is_sdk_form(path: str | Path) -> bool:
    """Whether the configuration at ``path`` is the SDK quantize notebook's."""
    try:
        data = read_json_object(Path(path))
    except ConfigError:
        return False
    return any(key in data for key in MARKERS)


def load_sdk_config(path: str | Path, plugin_keys: Sequence[ConfigKey] = ()) -> RunConfig:
    """Check the SDK form with the same one-line errors as tl's own, and express it as a RunConfig.

    ``plugin_keys`` are the keys the Keras framework's plugins declare: those of :data:`TL_KEYS` among them
    (``tpc_version``, ...) may be given; the others take their defaults."""
    path = Path(path).absolute()
    data = read_json_object(path)
    source, base_dir = path.name, path.parent.resolve()
    plugin = {key.name: key for key in plugin_keys if key.name in TL_KEYS}
    extra = {key.name: key for key in CORE_KEYS if key.name in TL_KEYS} | plugin
    keys = {**{key.name: key for key in SDK_KEYS}, **extra}
    for name in data:
        if name not in keys:
            close = difflib.get_close_matches(name, list(keys), n=1)
            hint = f'did you mean "{close[0]}"?' if close else "keys of the SDK's quantize configuration: " + \
                ", ".join(key.name for key in SDK_KEYS)
            raise ConfigError(f'{source}: unknown key "{name}"; {hint}')
    for key in SDK_KEYS:
        if key.name not in data:
            raise ConfigError(f'{source}: missing key "{key.name}" ({key.help}), which the SDK\'s quantize '
                              "configuration has")
    values = {name: keys[name].check(value, base_dir, source) for name, value in data.items()}
    if values.get("framework", "keras") != "keras":
        raise ConfigError(f'{source}: the SDK\'s quantize configuration is for Keras models; remove "framework"')
    extension = values["evaluate_image_extension"].lstrip(".")
    if not extension or "/" in extension:
        raise ConfigError(f'{source}: "evaluate_image_extension" is {json.dumps(data["evaluate_image_extension"])}; '
                          'give an extension such as "jpg"')
    settings = {name: values[name] for name in TL_KEYS if name in values and name not in ("framework", *plugin)}
    plugin_settings = {key.name: values.get(key.name, key.default) for key in plugin_keys if not key.required}
    return RunConfig(
        config_file=path, dataset_training_dir=values["dataset_image_dir"],
        dataset_validation_dir=values["evaluate_image_dir"], evaluate_label_file=values["evaluate_label_file"],
        output_dir=values["output_dir"], evaluate_result_dir=values["evaluate_result_dir"],
        batch_size=values["batch_size"],
        input_tensor_size=values["input_tensor_size"], framework="keras", quantize=True,
        quantization_images=values["batch_size"] * values["iteration_count"], given_keys=frozenset(data),
        options={"evaluate_image_extension": extension, "source_keras_model": values["source_keras_model"],
                 **plugin_settings}, **settings,
    )


def sdk_dataset(config: RunConfig) -> DatasetIndex:
    """Calibration images (every image under dataset_image_dir) and evaluation images (class folders)."""
    assert config.evaluate_label_file is not None  # a required key of the SDK's form
    labels = read_json_object(config.evaluate_label_file, what="labels file")
    if not labels or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in labels.values()):
        raise DatasetError(f'labels file {config.evaluate_label_file} must map class names to ids, '
                           'e.g. {"daisy": 0, "roses": 1}')
    calibration = sorted(
        Path(folder) / name
        for folder, folders, names in os.walk(config.dataset_training_dir)
        for name in names if name.lower().endswith(CALIBRATION_SUFFIXES) and not name.startswith(".")
    )
    if not calibration:
        raise DatasetError(f"no calibration images (.jpg, .jpeg, .png, .bmp) in {config.dataset_training_dir}")
    extension = "." + config.options["evaluate_image_extension"].lower()
    samples = []
    classes = sorted((entry for entry in os.scandir(config.dataset_validation_dir)
                      if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")),
                     key=lambda entry: entry.name)
    if not classes:
        raise DatasetError(f"no class folders in {config.dataset_validation_dir}; put the evaluation images in "
                           "<class name>/ folders")
    for entry in classes:
        if entry.name not in labels:
            raise DatasetError(f'evaluation folder "{entry.name}" is not in {config.evaluate_label_file}; add it there '
                               "or remove the folder")
        samples += [(Path(entry.path) / name, labels[entry.name]) for name in sorted(os.listdir(entry.path))
                    if name.lower().endswith(extension) and (Path(entry.path) / name).is_file()]
    if not samples:
        raise DatasetError(f"no *{extension} images in the class folders of {config.dataset_validation_dir}; check "
                           '"evaluate_image_extension"')
    first = next(iter(labels.values()))
    return DatasetIndex(labels=labels,
                        training=Split("calibration", config.dataset_training_dir,
                                       tuple((path, first) for path in calibration)),
                        validation=Split("evaluation", config.dataset_validation_dir, tuple(samples)),
                        labels_file=config.evaluate_label_file)


def model_preprocessing(config: RunConfig, reporter: Reporter) -> Preprocessing:
    """The preprocessing the model was trained with, when known; the SDK training notebook's [0, 1] otherwise."""
    assert config.options["source_keras_model"] is not None
    model = config.options["source_keras_model"]
    beside = (model if model.is_dir() else model.parent) / "preprocessing.json"
    if beside.is_file():
        preprocessing = Preprocessing.from_dict(json.loads(beside.read_text()))
        if preprocessing.size != config.input_tensor_size:
            raise ConfigError(f'{config.config_file.name}: "input_tensor_size" is {config.input_tensor_size}, but the '
                              f"model was trained at {preprocessing.size} ({beside}); set it to {preprocessing.size}")
        reporter.info(f"Preprocessing: {preprocessing.describe()}, as the model was trained ({beside})")
        return preprocessing
    preprocessing = Preprocessing.from_config(replace(config, preprocessing=config.preprocessing or "unit"))
    origin = "the configuration's" if config.preprocessing else "the SDK training notebook's"
    reporter.info(f"Preprocessing: {preprocessing.describe()}, {origin} (the model has no preprocessing.json)")
    return preprocessing


def quantize_sdk(path: str | Path, manager: PluginManager, reporter: Reporter, *,
                 debug: bool = False) -> QuantizationResult:
    """The SDK quantize notebook's job, done the tl way; see the module's documentation."""
    started = time.monotonic()
    config = load_sdk_config(path, framework_keys(manager, "keras")[0])
    hooks = open_hooks(config, manager, [*REQUIRED_HOOKS, "tl_export_tflite"], debug=debug)
    dataset = sdk_dataset(config)
    reporter.info(f"SDK quantize configuration: {len(dataset.training)} calibration and {len(dataset.validation)} "
                  f"evaluation images, {len(dataset.labels)} classes; model {config.options['source_keras_model']}")
    preprocessing = model_preprocessing(config, reporter)
    assert hooks.framework is not None
    hooks.framework.start(reporter)
    with output_lock({"output_dir": config.output_dir, "evaluate_result_dir": config.evaluate_result_dir},
                     command_line(), reporter):
        return _quantize_sdk(config, hooks, dataset, preprocessing, reporter, started)


def _quantize_sdk(config: RunConfig, hooks: Hooks, dataset: DatasetIndex, preprocessing: Preprocessing,
                  reporter: Reporter, started: float) -> QuantizationResult:
    folder = config.output_dir / PACKAGE_FOLDER
    created = prepare_output_dir(config.output_dir, "output_dir") + \
        prepare_output_dir(config.evaluate_result_dir, "evaluate_result_dir")
    check_replaceable(folder, RECORD)
    answered: dict[str, str] = {}
    model, answered["tl_load_model"] = hooks.answer("tl_load_model", path=config.options["source_keras_model"],
                                                    reporter=reporter, purpose="quantize")
    tflite_stage = Path(tempfile.mkdtemp(prefix=".model.tl-partial-", dir=config.output_dir))
    try:
        with StagedDir(folder) as staged:
            package = make_package(hooks, model, dataset, preprocessing, config, reporter, answered, staged.path)
            keras_metrics, _ = evaluate_model(hooks, model, dataset, preprocessing, config, reporter,
                                           label="evaluating the Keras model ", name="Keras model")
            tflite = tflite_models(hooks, model, dataset, preprocessing, config, reporter, answered, tflite_stage)
            metrics = combined(keras_metrics, package, config)
            report_drop(reporter, metrics, config)
            write_package_files(staged.path, dataset, preprocessing, config, metrics, package, answered, hooks)
            results = {
                "top_1_accuracy_keras": keras_metrics["top_1_accuracy"],
                "top_1_accuracy_keras_quantized": package.metrics["top_1_accuracy"],
                "top_1_accuracy_tflite": tflite["float"]["top_1_accuracy"],
                "top_1_accuracy_tflite_quantized": tflite["quantized"]["top_1_accuracy"],
                **metrics,
                "preprocessing": {"model.tflite and the Keras model": preprocessing.to_dict(),
                                  "model_quantized.tflite and imx500/": raw_input(preprocessing).to_dict()},
            }
            _publish(staged, tflite_stage, config, results)
    except BaseException:
        remove_if_empty(created)
        raise
    finally:
        shutil.rmtree(tflite_stage, ignore_errors=True)
    for name in ("model.tflite", "model_quantized.tflite"):
        reporter.info(f"TFLite model: {config.output_dir / name}")
    report_package(reporter, folder, package)
    reporter.info(f"Results: {config.results_file}")
    return QuantizationResult(metrics=results, folder=folder, model_file=folder / package.exported.name,
                              conversion=package.conversion, seconds=time.monotonic() - started, plugins=answered)


def _publish(staged: StagedDir, tflite_stage: Path, config: RunConfig, results: dict[str, Any]) -> None:
    """Move the package, both TFLite models and results.json into place together."""
    try:
        for file in tflite_stage.iterdir():
            flush(file)
    except OSError as exc:
        raise OutputError(f"cannot write the outputs: {exc}; earlier outputs are unchanged") from None
    moves = [functools.partial(os.replace, tflite_stage / name, config.output_dir / name)
             for name in ("model.tflite", "model_quantized.tflite")]
    publish_together(config.results_file, results, [staged.publish, *moves], "the outputs")
