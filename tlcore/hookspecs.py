"""The hooks a ``tl`` plugin can implement.

Hooks are called with keyword arguments; an implementation may accept any subset
of them, so new arguments can be added without breaking existing plugins.

*Answer* hooks (``firstresult``) stop at the first non-None result. Plugins are
asked in pluggy's order: the last registered first, shifted by ``tryfirst`` and
``trylast``. Built-in implementations are ``trylast``, so an installed plugin
answers before them. *Collecting* hooks call every plugin. *Observer* hooks
(``tl_on_*``) call every plugin and ignore return values.

*Framework steps* (loading the base model, top removal, training, saving,
prediction, loading a saved model) are asked only of the plugins that serve the
selected framework (``TL_FRAMEWORK``) and of framework-neutral plugins.

Documented hook by hook in ``docs/hooks.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pluggy

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import ConfigKey, RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.distributed import Cluster
    from tlcore.evaluation import Predictions
    from tlcore.frameworks import Devices, Framework
    from tlcore.health import HealthReport
    from tlcore.preprocessing import Preprocessing
    from tlcore.quantization import Calibration, Conversion
    from tlcore.report import Reporter
    from tlcore.run import RunResult
    from tlcore.training import RunEvents

PROJECT_NAME = "tl"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- declarations ---------------------------------------------------------------


@hookspec
def tl_config_keys() -> list[ConfigKey]:
    """Declare configuration keys this plugin reads from configuration.json.

    :returns: a list of :class:`tlcore.config.ConfigKey`. Every plugin is asked;
        the keys are validated like the built-in ones, and a key nobody declares
        is reported as unknown. Keys of a plugin that serves other frameworks than
        the selected one are refused.
    """


@hookspec
def tl_frameworks() -> list[Framework]:
    """Declare the frameworks this plugin provides.

    :returns: a list of :class:`tlcore.frameworks.Framework`. Every plugin is asked;
        a framework declared by two plugins is an error.
    """


# --- the run, in the order the orchestrator calls the hooks -----------------


@hookspec
def tl_on_run_start(config: RunConfig) -> None:
    """Observer: a run starts, after its configuration and framework were checked.

    :param config: the :class:`tlcore.config.RunConfig` of the run.
    """


@hookspec(firstresult=True)
def tl_load_dataset(config: RunConfig, reporter: Reporter) -> DatasetIndex | None:
    """Index the training and validation images. Stops at first non-None result.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter` for messages and progress.
    :returns: a :class:`tlcore.dataset.DatasetIndex`.
    """


@hookspec(firstresult=True)
def tl_devices(config: RunConfig) -> Devices | None:
    """Framework step: the devices this run computes on (GPUs when there are, else the CPU).
    Stops at first non-None result. Optional (a framework without it says nothing and computes in float32).

    The core prints it at the start of a run and resolves ``"mixed_precision": "auto"`` by it: the
    ``config`` the later steps get has ``mixed_precision`` true or false.

    :param config: the :class:`tlcore.config.RunConfig` (``mixed_precision`` as configured).
    :returns: a :class:`tlcore.frameworks.Devices`.
    """


@hookspec(firstresult=True)
def tl_cluster(config: RunConfig, reporter: Reporter) -> Cluster | None:
    """Framework step: join the other workers of a run, the engine's own way (torchrun's environment for
    torch). Stops at first non-None result. Optional: without it, or with None, the run has one worker.

    Called before the run takes its output lock or does any work: a bad environment is a
    :class:`tlcore.errors.ConfigError`; ``"distribute": "multi_worker"`` without the engine's environment
    too. Waits at most ``worker_timeout`` seconds for the other workers.

    :param config: the :class:`tlcore.config.RunConfig` (``distribute``, ``worker_timeout``).
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: a :class:`tlcore.distributed.Cluster` with the engine's collectives, or None.
    """


@hookspec(firstresult=True)
def tl_load_base_model(config: RunConfig, reporter: Reporter) -> Any:
    """Framework step: load the base model to transfer-learn from. Stops at first non-None result.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: a framework model object (opaque to the core).
    """


@hookspec(firstresult=True)
def tl_remove_top_layer(model: Any, config: RunConfig, reporter: Reporter) -> Any:
    """Framework step: turn the base model into a feature extractor. Stops at first non-None result.

    :param model: the result of :func:`tl_load_base_model`.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`; say which layers were removed.
    :returns: the feature-extractor model (it may be ``model`` itself when it has no top).
    """


@hookspec
def tl_check_model(model: Any, config: RunConfig, reporter: Reporter) -> None:
    """Check the feature extractor before any training. Every plugin is asked.

    Raise :class:`tlcore.errors.ModelError` for a layer that cannot work where the model
    is going (one line: the layer, its type, what to do); warn through the reporter for a
    risky one. The built-in ``imx500.layers`` checks against what the IMX500 and MCT support.

    :param model: the result of :func:`tl_remove_top_layer`.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: nothing.
    """


@hookspec(firstresult=True)
def tl_train(model: Any, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
             reporter: Reporter, events: RunEvents) -> Any:
    """Framework step: train a new classification head on the feature extractor.

    Stops at first non-None result.

    :param model: the result of :func:`tl_remove_top_layer`.
    :param dataset: the :class:`tlcore.dataset.DatasetIndex`.
    :param preprocessing: the :class:`tlcore.preprocessing.Preprocessing` of every image;
        evaluation, prediction and quantization use the same one.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter` for epoch lines and progress.
    :param events: a :class:`tlcore.training.RunEvents`; call ``events.epoch_start(epoch)``
        and ``events.epoch_end(epoch, logs)`` (or use :class:`tlcore.training.TrainingLoop`)
        so observer plugins hear about epochs.
    :returns: the trained classifier: model input -> one score per label id.
    """


@hookspec
def tl_on_epoch_start(config: RunConfig, epoch: int, epochs: int) -> None:
    """Observer: a training epoch starts.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param epoch: the epoch number, counted from 1.
    :param epochs: the number of epochs of the run.
    """


@hookspec
def tl_on_epoch_end(config: RunConfig, epoch: int, epochs: int, logs: Mapping[str, float]) -> None:
    """Observer: a training epoch ended.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param epoch: the epoch number, counted from 1.
    :param epochs: the number of epochs of the run.
    :param logs: dict of metric name -> float (``loss``, ``acc``, ``val_loss``, ``val_acc``).
    """


@hookspec(firstresult=True)
def tl_save_model(model: Any, path: Path, config: RunConfig, reporter: Reporter) -> Any:
    """Framework step: save the trained classifier into the folder ``path``.

    Stops at first non-None result. ``path`` is a fresh staging folder; the core
    moves it to ``output_dir/saved_model`` only when the whole run succeeded.

    :param model: the result of :func:`tl_train`.
    :param path: a :class:`pathlib.Path` to an empty, existing folder.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: any non-None value (e.g. ``path``) to say the model was saved.
    """


@hookspec(firstresult=True)
def tl_load_model(path: Path, reporter: Reporter) -> Any:
    """Framework step: load a classifier that :func:`tl_save_model` saved. Stops at first non-None result.

    :param path: the ``saved_model`` folder.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: the classifier, as :func:`tl_predict` takes it.
    """


@hookspec(firstresult=True)
def tl_predict(model: Any, images: np.ndarray) -> np.ndarray | None:
    """Framework step: score a batch of images. Stops at first non-None result.

    :param model: the classifier (from :func:`tl_train` or :func:`tl_load_model`).
    :param images: model input: a float32 numpy array of n images, already preprocessed
        and laid out as the framework declared (NHWC or NCHW).
    :returns: scores, an array-like of shape (n, number of outputs): one row per image,
        one column per output index (label id).
    """


@hookspec(firstresult=True)
def tl_quantize(model: Any, calibration: Calibration, preprocessing: Preprocessing, config: RunConfig,
                reporter: Reporter) -> Any:
    """Framework step: quantize the float classifier for the IMX500. Stops at first non-None result.

    The quantized model takes what the device gives: raw RGB pixels 0-255 (resized), so
    the implementation puts the normalisation of ``preprocessing`` inside the model.

    :param model: the float classifier (from :func:`tl_train` or :func:`tl_load_model`).
    :param calibration: a :class:`tlcore.quantization.Calibration`: call it for a fresh iterator of
        float32 batches of raw pixels in the framework's layout; ``len()`` batches per pass.
    :param preprocessing: the :class:`tlcore.preprocessing.Preprocessing` the model was trained with.
    :param config: the :class:`tlcore.config.RunConfig` (``quantization_method``, ``gptq_epochs``,
        ``tpc_version``).
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: the quantized model, as :func:`tl_export_quantized` takes it.
    """


@hookspec(firstresult=True)
def tl_export_quantized(model: Any, path: Path, config: RunConfig, reporter: Reporter) -> Path | None:
    """Framework step: write the quantized model into the folder ``path``. Stops at first non-None result.

    ``path`` is the staging folder of ``output_dir/imx500``; :func:`tl_load_model` must load
    the quantized model back from it.

    :param model: the result of :func:`tl_quantize`.
    :param path: a :class:`pathlib.Path` to the staging folder.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: the path of the exported model file (the converter's input).
    """


@hookspec(firstresult=True)
def tl_export_tflite(model: Any, calibration: Calibration, preprocessing: Preprocessing, path: Path,
                     reporter: Reporter) -> Mapping[str, Path] | None:
    """Framework step: write TFLite models of the float classifier, for targets other than the IMX500.

    Stops at first non-None result.

    :param model: the float classifier.
    :param calibration: the :class:`tlcore.quantization.Calibration` (raw pixels) for the int8 model.
    :param preprocessing: the :class:`tlcore.preprocessing.Preprocessing` the model was trained with.
    :param path: a :class:`pathlib.Path` to a staging folder.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: ``{"float": path of the float model (preprocessed input), "quantized": path of the int8
        model (raw uint8 pixels in)}``; :func:`tl_load_model` loads either file.
    """


@hookspec(firstresult=True)
def tl_convert(model_file: Path, path: Path, config: RunConfig, reporter: Reporter) -> Conversion | None:
    """Convert the exported quantized model into the device's package. Stops at first non-None result.

    :param model_file: the file :func:`tl_export_quantized` wrote.
    :param path: the staging folder: put the package's files here.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: a :class:`tlcore.quantization.Conversion`; when the converter is not installed, one with
        ``converted=False`` and the ``reason`` (what to install).
    """


@hookspec
def tl_evaluate(predictions: Predictions, dataset: DatasetIndex, config: RunConfig,
                reporter: Reporter) -> dict[str, Any] | None:
    """Compute metrics from the classifier's predictions on the validation images.

    Every plugin is asked; the core merges the dicts into results.json and refuses
    a metric name reported by two plugins.

    :param predictions: the :class:`tlcore.evaluation.Predictions`: scores, true label
        ids and file paths of the validation images.
    :param dataset: the :class:`tlcore.dataset.DatasetIndex`.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: a dict of JSON-serialisable metrics, or None.
    """


@hookspec
def tl_write_reports(predictions: Predictions, metrics: Mapping[str, Any], history: Sequence[Mapping[str, float]],
                     dataset: DatasetIndex, path: Path, config: RunConfig, reporter: Reporter,
                     health: HealthReport | None) -> list[str] | None:
    """Write report files (tables, pictures, a summary) about the run. Every plugin is asked.

    ``path`` is a staging folder: everything written there is moved into
    ``evaluate_result_dir`` together with results.json, only when the whole run succeeded.

    :param predictions: the :class:`tlcore.evaluation.Predictions` of the validation images.
    :param metrics: the merged metrics of results.json.
    :param history: one dict per epoch: ``epoch``, ``loss``, ``acc``, ``val_loss``, ``val_acc``.
    :param dataset: the :class:`tlcore.dataset.DatasetIndex`.
    :param path: a :class:`pathlib.Path` to the staging folder.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :param health: the :class:`tlcore.health.HealthReport` of the data check (duplicates, likely wrong
        labels, thin or imbalanced classes; its ``data_health.csv`` and ``.json`` are already in ``path``),
        or None when the run did not check the data.
    :returns: the names of the files written (relative to ``path``), or None.
    """


@hookspec
def tl_on_run_end(config: RunConfig, metrics: Mapping[str, Any], result: RunResult) -> None:
    """Observer: a run finished and its outputs were written.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param metrics: the merged metrics written to results.json.
    :param result: the :class:`tlcore.run.RunResult`: metrics, epoch history, output paths
        and the plugins that answered.
    """


@hookspec
def tl_on_run_failed(config: RunConfig, error: BaseException) -> None:
    """Observer: a run failed or was interrupted; nothing of it was published.

    Called for errors and for Ctrl-C / SIGTERM (``KeyboardInterrupt``), so plugins can
    clean up what they started. An error raised here is shown as a warning and does
    not hide the run's own error.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param error: the exception that stopped the run.
    """
