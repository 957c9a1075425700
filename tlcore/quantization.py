"""Quantizing a trained classifier for the IMX500, measuring what it costs in accuracy, converting it.

The flow is the same for every framework: the core picks calibration images from
the training split and streams them as the device will see them (raw RGB pixels,
0-255: the framework puts the normalisation inside the quantized model); the
framework quantizes (``tl_quantize``) and exports (``tl_export_quantized``); the
exported model is loaded back (``tl_load_model``) and evaluated on the validation
images by the same metric plugins as the float model; a converter plugin
(``tl_convert``) turns it into the IMX500's package. Everything is staged and
published together: ``output_dir/imx500/`` and the quantized figures in results.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from tlcore import __version__
from tlcore.calls import Hooks
from tlcore.dataset import DatasetIndex
from tlcore.errors import ConfigError, ModelError, PluginError
from tlcore.evaluation import evaluate_model
from tlcore.images import limit_pixels
from tlcore.loader import ImageBatches
from tlcore.lock import command_line, output_lock
from tlcore.outputs import (
    MARKER, StagedDir, adopt_earlier, check_owned, check_replaceable, publish_together, write_json_atomic,
)
from tlcore.preprocessing import Preprocessing
from tlcore.registry import open_hooks
from tlcore.sampling import run_seed, stratified

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import RunConfig
    from tlcore.pluginmanager import PluginManager
    from tlcore.report import Activity, Reporter

PACKAGE_FOLDER = "imx500"
RECORD = "quantization.json"
"""Written into output_dir/imx500 with the package; also marks the folder as tl's own."""
TFLITE_FOLDER = "tflite"
TFLITE_RECORD = "tflite.json"


REQUIRED_HOOKS = ("tl_load_dataset", "tl_load_model", "tl_quantize", "tl_export_quantized", "tl_predict", "tl_evaluate")


@dataclass(frozen=True)
class Conversion:
    """What a converter plugin (``tl_convert``) did with the exported model.

    :param converted: whether the device package was written.
    :param files: the files it added to the package folder.
    :param fits: whether the model fits in the device's memory (None when unknown).
    :param memory: a few words on the memory use, e.g. ``"3.89 MB of 8.00 MB (49%)"``.
    :param next_step: what the user does with the package next.
    :param reason: why nothing was converted (what to install), when ``converted`` is False.
    :param tool: the converter and its version.
    """

    converted: bool
    files: tuple[str, ...] = ()
    fits: bool | None = None
    memory: str = ""
    next_step: str = ""
    reason: str = ""
    tool: str = ""


@dataclass(frozen=True)
class QuantizationResult:
    """What ``tl quantize`` (or the last stage of ``tl run``) produced."""

    metrics: Mapping[str, Any]
    folder: Path
    model_file: Path
    conversion: Conversion
    seconds: float = 0.0
    plugins: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "plugins", MappingProxyType(dict(self.plugins)))


class Calibration:
    """The calibration images, as the device gets them: call it for a fresh iterator of batches.

    Each batch is float32 raw RGB pixels (0-255) in the framework's layout, resized as
    in training. Quantizers call a representative dataset several times (warm-ups,
    then the statistics pass); the quantization's activity line follows the longest
    pass, and :meth:`stage` tells it what the quantizer does next.
    """

    def __init__(self, split: Any, indices: list[int], preprocessing: Preprocessing, batch_size: int,
                 bad_images: str) -> None:
        self.split = split
        self.indices = indices
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.bad_images = bad_images
        self.activity: Activity | None = None
        self._best = 0

    def __len__(self) -> int:
        """The number of batches of one pass."""
        return -(-len(self.indices) // self.batch_size)

    @property
    def images(self) -> int:
        return len(self.indices)

    def __call__(self) -> Iterator[np.ndarray]:
        done = 0
        device = raw_input(self.preprocessing)
        batches = ImageBatches(self.split, device, self.batch_size, order=self.indices, bad_images=self.bad_images,
                               raw=True)
        for batch in batches:
            done += len(batch)
            if done > self._best:
                self._best = done
                self.stage(f"calibrating: {done}/{self.images} images")
            yield device.apply(batch.images)

    def stage(self, text: str) -> None:
        """Say on the quantization's activity line what is happening, e.g. ``"GPTQ step 3/40"``."""
        if self.activity is not None:
            self.activity.stage(text)


def raw_input(preprocessing: Preprocessing) -> Preprocessing:
    """What the device feeds the quantized model: RGB pixels 0-255, resized, in the same layout."""
    return replace(preprocessing, name="none", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="RGB")


def calibration_indices(split: Any, count: int, seed: int) -> list[int]:
    """``count`` training images (all, when there are fewer), spread over the classes, chosen by ``seed``."""
    return stratified(split.samples, seed, "calibration", count=count)


def trained_record(config: RunConfig) -> dict[str, Any]:
    """The record of the run that trained ``output_dir/saved_model``, checked against ``config``.

    :raises ConfigError: when there is no trained model, or the configuration changed since.
    """
    record_file = config.saved_model_dir / MARKER
    if not record_file.is_file():
        raise ConfigError(f"no trained model in {config.saved_model_dir}; train it first with "
                          f"`tl run {config.config_file}`")
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {record_file} ({exc}); train the model again with `tl run`") from None
    trained = record.get("configuration", {})
    current = config.to_dict()
    for key in sorted(set(trained) | set(current)):
        if key in config.neutral or key in ("config_file",) or key not in current:
            continue  # a key of a plugin not loaded now (blocked, say) says nothing about this model
        if trained.get(key) != current.get(key):
            raise ConfigError(
                f'{config.config_file.name}: "{key}" changed since the model in {config.saved_model_dir} was trained '
                f"({json.dumps(trained.get(key))} then, {json.dumps(current.get(key))} now); train again with "
                "`tl run`, or set it back"
            )
    return record


def quantize(config: RunConfig, manager: PluginManager, reporter: Reporter, *, model: Any = None,
             dataset: DatasetIndex | None = None, debug: bool = False) -> QuantizationResult:
    """Quantize the model ``tl run`` saved for ``config`` (or ``model``, fresh from training), evaluate it,
    convert it, and publish ``output_dir/imx500`` with the quantized figures added to results.json."""
    with output_lock({"output_dir": config.output_dir, "evaluate_result_dir": config.evaluate_result_dir},
                     command_line(), reporter):
        return quantize_locked(config, manager, reporter, model=model, dataset=dataset, debug=debug)


def quantize_locked(config: RunConfig, manager: PluginManager, reporter: Reporter, *, model: Any = None,
                    dataset: DatasetIndex | None = None, debug: bool = False) -> QuantizationResult:
    """:func:`quantize`, for a caller that holds the output folders' lock (``tl run`` with ``"quantize": true``)."""
    started = time.monotonic()
    hooks = open_hooks(config, manager, [*REQUIRED_HOOKS, *(["tl_export_tflite"] if config.tflite else [])], debug=debug)
    record = trained_record(config)
    limit_pixels(config.max_image_pixels)
    adopt_earlier(config.evaluate_result_dir, config.saved_model_dir / MARKER)
    check_owned(config.evaluate_result_dir, [config.results_file.name])  # refused before quantizing, not after
    answered: dict[str, str] = {}
    if dataset is None:
        dataset, answered["tl_load_dataset"] = hooks.answer("tl_load_dataset", config=config, reporter=reporter)
    saved_labels = json.loads((config.saved_model_dir / "labels.json").read_text())
    if dict(dataset.labels) != saved_labels:
        raise ConfigError(f"the labels changed since the model was trained ({config.evaluate_label_file}); "
                          "train again with `tl run`")
    preprocessing = Preprocessing.from_dict(json.loads((config.saved_model_dir / "preprocessing.json").read_text()))
    folder = config.output_dir / PACKAGE_FOLDER
    check_replaceable(folder, RECORD)
    if config.tflite:
        check_replaceable(config.output_dir / TFLITE_FOLDER, TFLITE_RECORD)
    if model is None:
        assert hooks.framework is not None
        hooks.framework.start(reporter)
        model, answered["tl_load_model"] = hooks.answer("tl_load_model", path=config.saved_model_dir, reporter=reporter,
                                                        purpose="quantize")
    with StagedDir(folder) as staged, StagedDir(config.output_dir / TFLITE_FOLDER) as tflite:
        package = make_package(hooks, model, dataset, preprocessing, config, reporter, answered, staged.path)
        float_metrics = _float_metrics(hooks, model, record, dataset, preprocessing, config, reporter)
        metrics = combined(float_metrics, package, config)
        if config.tflite:
            tflite_metrics = tflite_models(hooks, model, dataset, preprocessing, config, reporter, answered,
                                           tflite.path)
            metrics.update({f"tflite_{name}": value for name, value in tflite_metrics["float"].items()})
            metrics.update({f"tflite_quantized_{name}": value for name, value in tflite_metrics["quantized"].items()})
            write_json_atomic(tflite.path / TFLITE_RECORD, {"metrics": tflite_metrics, "preprocessing": {
                "model.tflite": preprocessing.to_dict(), "model_quantized.tflite": raw_input(preprocessing).to_dict()}})
        report_drop(reporter, metrics, config)
        write_package_files(staged.path, dataset, preprocessing, config, metrics, package, answered, hooks)
        publish_together(config.results_file, {**_existing_results(config), **metrics},
                         [staged.publish, *([tflite.publish] if config.tflite else [])], "the quantized model")
    report_package(reporter, folder, package)
    return QuantizationResult(metrics=metrics, folder=folder, model_file=folder / package.exported.name,
                              conversion=package.conversion, seconds=time.monotonic() - started, plugins=answered)


@dataclass(frozen=True)
class Package:
    """What :func:`make_package` put into the staging folder, and how the quantized model did."""

    metrics: Mapping[str, Any]
    exported: Path
    conversion: Conversion
    calibration_images: int


def make_package(hooks: Hooks, model: Any, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
                 reporter: Reporter, answered: dict[str, str], path: Path) -> Package:
    """Calibrate on ``dataset.training``, quantize, export into ``path``, load the export back and evaluate it
    on ``dataset.validation`` with raw pixels, and convert it for the device."""

    if preprocessing.channel_order != "RGB":
        raise ConfigError("the IMX500 gives RGB images; a model trained on BGR input cannot be quantized for it")
    indices = calibration_indices(dataset.training, config.quantization_images, run_seed(config))
    calibration = Calibration(dataset.training, indices, preprocessing, min(config.batch_size, 32), config.bad_images)
    method = {"ptq": "post-training quantization", "gptq": f"GPTQ ({config.gptq_epochs} epochs)"}
    tpc = config.options.get("tpc_version")  # the quantizers' key (tlplugins.imx500.tpc)
    reporter.info(f"Quantizing for the IMX500: {method[config.quantization_method]}"
                  + (f" with TPC {tpc}" if tpc else "")
                  + f", calibrated on {calibration.images} {dataset.training.name} images")
    with reporter.activity("Quantizing") as calibration.activity:
        quantized, answered["tl_quantize"] = hooks.answer("tl_quantize", model=model, calibration=calibration,
                                                          preprocessing=preprocessing, config=config, reporter=reporter)
    calibration.activity = None
    exported, answered["tl_export_quantized"] = hooks.answer(
        "tl_export_quantized", model=quantized, path=path, config=config, reporter=reporter)
    loaded, answered["tl_load_model"] = hooks.answer("tl_load_model", path=path, reporter=reporter, purpose="predict")
    metrics, _ = evaluate_model(hooks, loaded, dataset, raw_input(preprocessing), config, reporter,
                             label="evaluating the quantized model ", name="quantized model", answered=answered)
    conversion = _convert(hooks, Path(exported), path, config, reporter, answered)
    return Package(metrics=metrics, exported=Path(exported), conversion=conversion, calibration_images=len(indices))


def tflite_models(hooks: Hooks, model: Any, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
                  reporter: Reporter, answered: dict[str, str], path: Path) -> dict[str, dict[str, Any]]:
    """Write the framework's TFLite models into ``path`` and evaluate both: ``{"float": metrics, "quantized": metrics}``."""

    indices = calibration_indices(dataset.training, config.quantization_images, run_seed(config))
    calibration = Calibration(dataset.training, indices, preprocessing, min(config.batch_size, 32), config.bad_images)
    files, answered["tl_export_tflite"] = hooks.answer("tl_export_tflite", model=model, calibration=calibration,
                                                       preprocessing=preprocessing, path=path, reporter=reporter)
    metrics = {}
    for kind, processing in (("float", preprocessing), ("quantized", raw_input(preprocessing))):
        loaded, _ = hooks.answer("tl_load_model", path=Path(files[kind]), reporter=reporter, purpose="predict")
        metrics[kind], _ = evaluate_model(hooks, loaded, dataset, processing, config, reporter,
                                       label=f"evaluating {Path(files[kind]).name} ", name=Path(files[kind]).name)
    return metrics


def report_package(reporter: Reporter, folder: Path, package: Package) -> None:
    conversion = package.conversion
    reporter.info(f"Quantized model: {folder / package.exported.name}")
    if conversion.converted:
        fits = ""
        if conversion.fits is not None:
            fits = f"; fits in the chip: {'yes' if conversion.fits else 'NO'}"
            fits += f" ({conversion.memory})" if conversion.memory else ""
        reporter.info(f"IMX500 package: {folder / 'packerOut.zip'}{fits}")
        if conversion.next_step:
            reporter.info(f"Next: {conversion.next_step}")
    elif conversion.reason:
        reporter.warning(f"not converted for the IMX500: {conversion.reason}")


def _float_metrics(hooks: Hooks, model: Any, record: Mapping[str, Any], dataset: DatasetIndex,
                   preprocessing: Preprocessing, config: RunConfig, reporter: Reporter) -> Mapping[str, Any]:
    """The float model's figures on the same validation images: those of the run that trained it while the
    images are unchanged, else measured again now."""
    if record.get("validation_fingerprint") == dataset.validation.fingerprint() and record.get("metrics"):
        return record["metrics"]
    reporter.info("The validation images changed since training: evaluating the float model again")
    return evaluate_model(hooks, model, dataset, preprocessing, config, reporter, label="evaluating the float model ",
                          name="float model")[0]


def _existing_results(config: RunConfig) -> dict[str, Any]:
    try:
        existing = json.loads(config.results_file.read_text())
        return existing if isinstance(existing, dict) else {}
    except (OSError, ValueError):
        return {}


def _convert(hooks: Hooks, exported: Path, folder: Path, config: RunConfig, reporter: Reporter,
             answered: dict[str, str]) -> Conversion:
    if not hooks.implementations("tl_convert"):
        return Conversion(converted=False, reason="no converter plugin is installed")
    conversion, answered["tl_convert"] = hooks.answer("tl_convert", model_file=exported, path=folder, config=config,
                                                      reporter=reporter)
    if not isinstance(conversion, Conversion):
        raise PluginError(f'plugin "{answered["tl_convert"]}" returned {type(conversion).__name__} from tl_convert; '
                          "it must return a tlcore.quantization.Conversion")
    return conversion


def combined(float_metrics: Mapping[str, Any], package: Package, config: RunConfig) -> dict[str, Any]:
    """results.json's new keys: every quantized metric as ``quantized_<name>``, and what was done."""
    quantized, conversion = package.metrics, package.conversion
    metrics: dict[str, Any] = {f"quantized_{name}": value for name, value in quantized.items()}
    for name in ("top_1_accuracy", "num_images", "per_class"):
        if name in float_metrics:
            metrics[name] = float_metrics[name]
    if "top_1_accuracy" in float_metrics and "top_1_accuracy" in quantized:
        metrics["quantization_top_1_drop"] = float(float_metrics["top_1_accuracy"] - quantized["top_1_accuracy"])
    metrics["quantization"] = {
        "method": config.quantization_method,
        "tpc_version": config.options.get("tpc_version"),
        "calibration_images": package.calibration_images,
        "model": package.exported.name,
        "input": "raw RGB pixels 0-255 (normalisation is inside the model)",
        "converted": conversion.converted,
        "fits_in_chip": conversion.fits,
        "memory": conversion.memory or None,
        "converter": conversion.tool or None,
    }
    return metrics


def report_drop(reporter: Reporter, metrics: Mapping[str, Any], config: RunConfig) -> None:
    if "top_1_accuracy" not in metrics or "quantized_top_1_accuracy" not in metrics:
        return
    before, after = metrics["top_1_accuracy"], metrics["quantized_top_1_accuracy"]
    drop = before - after
    reporter.info(f"Top-1 accuracy: float {before:.4f}, quantized {after:.4f} ({after - before:+.4f})")
    if drop > config.quantization_max_drop:
        reporter.warning(
            f"quantization cost {drop:.4f} of Top-1 accuracy, more than quantization_max_drop "
            f"({config.quantization_max_drop:g}); try more calibration images (quantization_images), "
            '"quantization_method": "gptq", or another tpc_version'
        )


def write_package_files(folder: Path, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
                        metrics: Mapping[str, Any], package: Package, answered: Mapping[str, str], hooks: Hooks) -> None:
    conversion = package.conversion
    names = dataset.class_names
    (folder / "labels.txt").write_text("".join(f"{name if name is not None else ''}\n" for name in names),
                                       encoding="utf-8")
    write_json_atomic(folder / "labels.json", dict(sorted(dataset.labels.items(), key=lambda kv: kv[1])))
    device = raw_input(preprocessing)
    write_json_atomic(folder / "preprocessing.json", {
        **device.to_dict(),
        "normalisation_inside_model": {"mean": list(preprocessing.mean), "std": list(preprocessing.std)},
        "note": "feed raw RGB pixels 0-255, resized to size x size; the model normalises them itself",
    })
    assert hooks.framework is not None
    write_json_atomic(folder / RECORD, {
        "tl_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "framework": hooks.framework.name,
        "configuration": config.to_dict(),
        "model": package.exported.name,
        "plugins": dict(answered),
        "conversion": {"converted": conversion.converted, "files": list(conversion.files), "fits": conversion.fits,
                       "memory": conversion.memory, "tool": conversion.tool, "reason": conversion.reason},
        "metrics": dict(metrics),
    })
