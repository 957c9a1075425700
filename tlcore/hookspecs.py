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

Each hook's docstring (Markdown) is its section of the hook reference, ``docs/hooks.md``, which
:mod:`tlcore.hookdocs` makes from them, in the order they are defined here: the order a run calls them.
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
    """Declare the configuration keys your plugin reads from `configuration.json`. *Collecting*:
    every plugin is asked. Declared keys are validated like the built-in ones (type, range,
    choices, paths resolved from the configuration file's folder); keys nobody declares are still
    reported as unknown. Values reach hooks as `config.options["key"]`, defaults filled in. The
    keys of a plugin that serves another framework than the selected one are refused with a
    message naming their framework (left out when empty or null, as the SDK's `"source_keras_model": ""`).
    The built-in plugins declare their keys the same way (the reports plugin `tensorboard`, the IMX500
    plugins `tpc_version` and `imx500_input_persistency`, the Keras base model `source_keras_model`). A
    key several plugins read is declared once, in `tlcore.keys.SHARED_KEYS` (`weights`,
    `mobilenet_alpha`, `distribute`, `worker_timeout`), and each returns it: the same key declared twice is accepted only when the
    declarations are equal. `ConfigKey(..., affects_model=False)` marks a key the trained model does not
    depend on (it may change between `tl run` and `tl quantize`); `starter=tlcore.keys.DEFAULT` makes
    `tl init` write it. `tl config keys` lists every key and who reads it.

    - Returns: `list[tlcore.config.ConfigKey]`.

    ```python
    from tlcore.config import ConfigKey
    from tlcore.hookspecs import hookimpl

    @hookimpl
    def tl_config_keys():
        return [ConfigKey("mixup_alpha", "number", default=0.0, minimum=0, help="mixup strength; 0 = off")]
    ```
    """


@hookspec
def tl_frameworks() -> list[Framework]:
    """Declare frameworks. *Collecting*: every plugin is asked; a framework name declared twice is an
    error. A `tlcore.frameworks.Framework` tells the core what it cannot learn from hooks: its
    `name` (the value of `"framework"`), a one-line `summary`, which optional core keys it
    honours (`keys`, from `OPTIONAL_KEYS`: `preprocessing`, `learning_rate`, `dropout`, `weight_decay`, `label_smoothing`, `head_search`, `augmentation`, `augmentation_views`,
    `fine_tune_layers`, `feature_cache`, `early_stopping_patience`, `early_stopping_monitor`,
    `holdout_fraction`, `learning_rate_schedule`, `warmup_epochs`, `class_weight`,
    `fine_tune_epochs`, `fine_tune_learning_rate`, `mixed_precision`; giving another one is an error), its `default_preprocessing` preset and
    tensor `layout` (`NHWC` or `NCHW`), the `model_format` it saves, the modules it `requires`
    (checked at start-up, without importing them, with `install` as the advice), and how to
    quieten its libraries (`quiet`, a `tlcore.frameworks.Quieting`: `env`, `loggers`, `message_noise`).

    - Returns: `list[tlcore.frameworks.Framework]`.

    ```python
    from tlcore.frameworks import Framework

    TL_FRAMEWORK = "jax"

    @hookimpl
    def tl_frameworks():
        return [Framework("jax", summary="JAX + Flax", keys=("learning_rate", "weights"),
                          default_preprocessing="imagenet", requires=("jax", "flax"),
                          install="pip install jax flax")]
    ```
    """


# --- the run, in the order the orchestrator calls the hooks -----------------


@hookspec
def tl_on_run_start(config: RunConfig) -> None:
    """*Observer*: the configuration and the framework are checked and the run starts.

    - `config` (`RunConfig`): typed values, absolute `pathlib.Path`s, and `options` (the keys
      declared by plugins).

    ```python
    @hookimpl
    def tl_on_run_start(config):
        print(f"training with {config.framework} into {config.output_dir}")
    ```
    """


@hookspec(firstresult=True)
def tl_load_dataset(config: RunConfig, reporter: Reporter) -> DatasetIndex | None:
    """*Answer hook* — first non-None result wins. Index the training and validation images. The
    built-in `datasets.imagenet_folder` reads `<split>/<class>/<image>` folders and labels.json.
    Indexing must not decode images: it only lists files, so a bad dataset is rejected at once.

    - `config` (`RunConfig`): the configuration.
    - `reporter` (`tlcore.report.Reporter`): `info(msg)`, `warning(msg)`,
      `progress(total, label, unit)`, `activity(label)`.
    - Returns: a `tlcore.dataset.DatasetIndex(labels={name: id}, training=Split, validation=Split)`;
      a `Split(name, root, samples)` holds `(path, label_id)` pairs. The model's output index of a
      class is its id; the output layer has `max(id) + 1` units.

    ```python
    from tlcore.dataset import DatasetIndex, Split

    @hookimpl
    def tl_load_dataset(config):
        rows = [line.split(",") for line in open(config.dataset_training_dir / "index.csv")]
        ...
        return DatasetIndex(labels=labels, training=Split("training", root, train), validation=Split("validation", root, val))
    ```
    """


@hookspec(firstresult=True)
def tl_cluster(config: RunConfig, reporter: Reporter) -> Cluster | None:
    """*Answer hook, framework step, optional* — first non-None result wins. Join the other workers of
    a run, the engine's own way, and return a `tlcore.distributed.Cluster`: this worker's `rank`
    of `size`, and the engine's collectives (`all_gather`, `broadcast`, `close`). It is called
    before anything else, and before the output lock: only the chief (rank 0) locks and writes the
    outputs. With it, `tlcore.training.fit` spreads feature extraction and training over the workers
    (see `tlcore.distributed`); the framework's steps add their gradients up over the workers. The
    built-in `torch.distributed` plugin joins a `torch.distributed` process group from torchrun's
    environment (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`); `keras.distributed` makes a
    `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG`. Return None for one worker (which
    may still spread its batches over its local devices: keras' devices step, `tl_devices`, then sets
    up a `tf.distribute.MirroredStrategy`, for `"distribute": "mirrored"` or several GPUs). Import no
    framework when there is nothing to join: this step runs before the output lock. Raise
    `ConfigError` for a bad environment, for `"distribute": "multi_worker"` without one, or for
    `"mirrored"` with one.

    - `config` (`RunConfig`): the configuration (`distribute`, `worker_timeout`).
    - `reporter` (`Reporter`): for messages.
    - Returns: a `tlcore.distributed.Cluster`, or None.

    ```python
    TL_FRAMEWORK = "jax"

    @hookimpl
    def tl_cluster(config):
        import jax
        if jax.process_count() == 1:
            return None
        return Cluster(jax.process_index(), jax.process_count(), "jax.distributed", "coordinator", MyCollectives())
    ```
    """


@hookspec(firstresult=True)
def tl_devices(config: RunConfig) -> Devices | None:
    """*Answer hook, framework step, optional* — first non-None result wins. Say which devices the run
    computes on. The core prints `Devices: GPU 0: NVIDIA A100-SXM4-40GB (compute 8.0); mixed
    precision on` (or `Devices: CPU (8 cores); ...`) before the base model loads, and resolves
    `"mixed_precision": "auto"` by it: the `config` every later step gets has `mixed_precision`
    `true` or `false`. A framework without this step prints nothing and computes in float32. The
    built-in `keras.framework` and `torch.framework` name the GPUs the run uses (every local GPU
    when the process runs alone, its own under torchrun), else the CPU, and how one process spreads
    its batches over several devices: `Devices: GPU 0: ...; GPU 1: ...; mirrored over 2 devices
    (GPU:0, GPU:1; tf.distribute.MirroredStrategy); mixed precision on`.

    - `config` (`RunConfig`): the configuration, `mixed_precision` as configured (`"auto"`, `true`, `false`).
    - Returns: a `tlcore.frameworks.Devices`: `accelerators` (one description per GPU, empty on the
      CPU), `cpu`, `mixed_precision_benefits` (float16 compute pays: tensor cores) and `spread` (how
      one process spreads its batches over several devices; empty on one).

    ```python
    TL_FRAMEWORK = "jax"

    @hookimpl
    def tl_devices(config):
        import jax
        from tlcore.frameworks import Devices, gpu_description
        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return Devices(tuple(gpu_description(i, d.device_kind, None) for i, d in enumerate(gpus)),
                       mixed_precision_benefits=bool(gpus))
    ```
    """


@hookspec(firstresult=True)
def tl_load_base_model(config: RunConfig, reporter: Reporter) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Load the model to transfer-learn
    from. The built-in `keras.base_model` builds MobileNetV2 without its top (`weights`,
    `mobilenet_alpha`) or loads `source_keras_model`; `torch.base_model` builds torchvision's
    MobileNetV2 or loads `source_torch_model`.

    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages.
    - Returns: a model object of the framework; the core passes it on without looking inside.

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_load_base_model(config):
        import tensorflow as tf
        size = config.input_tensor_size
        return tf.keras.applications.EfficientNetB0(input_shape=(size, size, 3), include_top=False, weights=None)
    ```
    """


@hookspec(firstresult=True)
def tl_remove_top_layer(model: Any, config: RunConfig, reporter: Reporter) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Turn the base model into a feature
    extractor by removing its classification (top) layers, and say which layers were removed. The
    built-in `top_removal.classifier_head` (keras) removes trailing Dense, Dropout, Softmax,
    Flatten, Reshape, softmax/sigmoid/linear Activation and 1x1-convolution-on-1x1 layers;
    `top_removal.torch_head` (torch) removes torchvision's `classifier`/`fc`/`head` and the
    classifying tail of an `nn.Sequential`. The example plugin `examples/tl-cut-at-layer` (keras)
    cuts at a named layer instead.

    - `model` (`Any`): the result of `tl_load_base_model`.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): say what was removed.
    - Returns: the feature extractor (the model itself when it has no top).

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_remove_top_layer(model, reporter):
        import tensorflow as tf
        reporter.info(f"removed: {model.layers[-1].name}")
        return tf.keras.Model(model.inputs, model.layers[-2].output)
    ```
    """


@hookspec
def tl_check_model(model: Any, config: RunConfig, reporter: Reporter) -> None:
    """*Collecting*: every plugin is asked, after the top layers are removed and before any training,
    so a base model that cannot work where it is going is refused at once, not after an hour of
    training. Raise `tlcore.errors.ModelError` (one line: the layer, its type, what to do) to stop
    the run; warn through the reporter for a risky layer. The built-in `imx500.layers` (keras and
    torch) checks the layers against what Sony's IMX500 converter accepts: with `"quantize": true`
    a refused layer is an error, otherwise a warning.

    - `model` (`Any`): the feature extractor, the result of `tl_remove_top_layer`.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for warnings.
    - Returns: nothing.

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_check_model(model):
        if any(type(layer).__name__ == "Lambda" for layer in model.layers):
            raise ModelError("the base model has a Lambda layer; my accelerator cannot run Python code")
    ```
    """


@hookspec(firstresult=True)
def tl_train(model: Any, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
             reporter: Reporter, events: RunEvents) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Train a new classification head on
    the feature extractor. The built-in trainers (`keras.trainer`, `torch.trainer`) add pooling,
    dropout and a softmax layer with `dataset.num_outputs` units, and use the core for what every
    framework shares: `tlcore.training.training_data` computes each image's features once when
    the base is frozen and images are not augmented (in memory, or in the disk cache), or streams
    decoded images every epoch; `tlcore.training.TrainingLoop` prints the `Epoch i/N` lines and
    live progress and tells observers about epochs. `tlcore.training.fit` does all of it for a
    trainer that gives it a `Trainable` (features, training and test steps): it also saves the run's
    state after every epoch in `output_dir/.tl-checkpoint/` (the steps' `state()` and
    `load_state(state)` when they have them, weights and optimizer; else `snapshot()` and
    `restore(state)`), and continues from it on `tl run --resume`.

    - `model` (`Any`): the result of `tl_remove_top_layer`.
    - `dataset` (`DatasetIndex`): the images.
    - `preprocessing` (`tlcore.preprocessing.Preprocessing`): `size`, per-channel `mean` and `std`
      in pixel units, `channel_order` and `layout`: model input = `(pixel - mean) / std`. The core
      decodes and scales images with it (`tlcore.loader.ImageBatches`); evaluation, prediction and
      quantization use the same one, and it is saved as `preprocessing.json` beside the model.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages and progress.
    - `events` (`tlcore.training.RunEvents`): call `events.epoch_start(epoch)` and
      `events.epoch_end(epoch, logs)` (epochs count from 1), or let `TrainingLoop` do it.
    - Returns: the trained classifier (model input -> one score per label id).

    ```python
    from tlcore.sampling import run_seed
    from tlcore.training import TrainingLoop, training_data

    @hookimpl
    def tl_train(model, dataset, preprocessing, config, reporter, events):
        data = training_data(dataset, preprocessing, config, reporter, run_seed(config),
                             compute=model.features, dim=model.dim, model_key=model.fingerprint)
        loop = TrainingLoop(reporter, events, config.epochs, data.num_train, data.num_validation)
        for epoch in loop:
            for inputs, labels in data.training(epoch):
                loop.trained(len(labels), *model.train_step(inputs, labels))    # (mean loss, number correct)
            for inputs, labels in data.validation():
                loop.validated(len(labels), *model.test_step(inputs, labels))
            loop.end_epoch()
        return model
    ```
    """


@hookspec
def tl_on_epoch_start(config: RunConfig, epoch: int, epochs: int) -> None:
    """*Observer*: a training epoch starts (called by the trainer through `events`).

    - `config` (`RunConfig`): the configuration.
    - `epoch` (`int`): the epoch number, from 1.
    - `epochs` (`int`): the number of epochs.

    ```python
    @hookimpl
    def tl_on_epoch_start(epoch, epochs):
        print(f"starting {epoch}/{epochs}")
    ```
    """


@hookspec
def tl_on_epoch_end(config: RunConfig, epoch: int, epochs: int, logs: Mapping[str, float]) -> None:
    """*Observer*: a training epoch ended.

    - `config` (`RunConfig`): the configuration.
    - `epoch` (`int`): the epoch number, from 1.
    - `epochs` (`int`): the number of epochs.
    - `logs` (`Mapping[str, float]`): `loss`, `acc`, `val_loss`, `val_acc`.

    ```python
    import csv

    @hookimpl
    def tl_on_epoch_end(config, epoch, logs):
        with open(config.output_dir / "history.csv", "a", newline="") as handle:
            csv.writer(handle).writerow([epoch, logs["loss"], logs.get("val_acc")])
    ```
    """


@hookspec(firstresult=True)
def tl_save_model(model: Any, path: Path, config: RunConfig, reporter: Reporter) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Save the trained classifier into
    `path`, an empty staging folder. The core adds `labels.json`, `preprocessing.json` and
    `tl_run.json`, and moves the folder to `output_dir/saved_model` only when the whole run
    succeeded, so a failed or interrupted run never leaves half a model. The built-in
    `keras.saved_model` writes a TensorFlow SavedModel, `torch.saving` a TorchScript `model.pt`.

    - `model` (`Any`): the result of `tl_train`.
    - `path` (`pathlib.Path`): the empty staging folder.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages.
    - Returns: any non-None value (e.g. `path`) to say the model was saved.

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_save_model(model, path):
        model.save(str(path / "model.keras"))
        return path
    ```
    """


@hookspec(firstresult=True)
def tl_load_model(path: Path, reporter: Reporter) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Load a classifier that
    `tl_save_model` saved (for prediction and quantization of a finished run), or the quantized
    model `tl_export_quantized` wrote (to evaluate it, and for prediction).

    - `path` (`pathlib.Path`): the `saved_model` folder, or the `imx500` folder of a quantized model.
    - `reporter` (`Reporter`): for messages.
    - Returns: the classifier, in the form `tl_predict` takes.

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_load_model(path):
        import tensorflow as tf
        return tf.keras.models.load_model(str(path / "model.keras"))
    ```
    """


@hookspec(firstresult=True)
def tl_predict(model: Any, images: np.ndarray) -> np.ndarray | None:
    """*Answer hook, framework step* — first non-None result wins. Score a batch of images. The core
    decodes the images, applies the preprocessing and calls this for every batch: during a run to
    evaluate the classifier (unless the trainer scored the validation images from features it had
    already computed), to evaluate a quantized model, and to predict.

    - `model` (`Any`): the classifier, from `tl_train` or `tl_load_model`.
    - `images` (`numpy.ndarray`): float32 model input of n images, laid out as the framework
      declared (`NHWC` or `NCHW`).
    - Returns: scores of shape (n, number of outputs), any array-like: one column per output index
      (label id). A wrong shape is an error naming the plugin.

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_predict(model, images):
        return model(images, training=False).numpy()
    ```
    """


@hookspec(firstresult=True)
def tl_quantize(model: Any, calibration: Calibration, preprocessing: Preprocessing, config: RunConfig,
                reporter: Reporter) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Quantize the float classifier for the
    IMX500 (`tl quantize`, or `tl run` with `"quantize": true`). The quantized model takes what the
    device gives it, raw RGB pixels 0-255, so the implementation puts the normalisation of
    `preprocessing` inside the model. The built-in `keras.quantize` and `torch.quantize` run MCT's
    post-training quantization (or GPTQ) with Sony's target platform capabilities (`tpc_version`).

    - `model` (`Any`): the float classifier, from `tl_train` or `tl_load_model`.
    - `calibration` (`tlcore.quantization.Calibration`): call it for a fresh iterator of float32
      batches of raw pixels in the framework's layout (training images, `quantization_images` of
      them); `len(calibration)` is the number of batches per pass; `calibration.stage(text)` says on
      the progress line what the quantizer is doing.
    - `preprocessing` (`Preprocessing`): how the model was trained to see pixels.
    - `config` (`RunConfig`): `quantization_method`, `gptq_epochs`, `tpc_version`.
    - `reporter` (`Reporter`): for messages.
    - Returns: the quantized model, in the form `tl_export_quantized` takes.

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_quantize(model, calibration, preprocessing):
        import model_compression_toolkit as mct
        raw = with_normalisation_inside(model, preprocessing)
        quantized, _ = mct.ptq.keras_post_training_quantization(raw, lambda: ([batch] for batch in calibration()))
        return quantized
    ```
    """


@hookspec(firstresult=True)
def tl_export_quantized(model: Any, path: Path, config: RunConfig, reporter: Reporter) -> Path | None:
    """*Answer hook, framework step* — first non-None result wins. Write the quantized model into
    `path`, the staging folder of `output_dir/imx500`, in the form the device's converter reads
    (keras: MCT's `.keras`; torch: MCT's ONNX). `tl_load_model` must load it back from that folder:
    the core evaluates the exported file, not the model in memory.

    - `model` (`Any`): the result of `tl_quantize`.
    - `path` (`pathlib.Path`): the staging folder.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages and activity.
    - Returns: the `pathlib.Path` of the exported file.

    ```python
    @hookimpl
    def tl_export_quantized(model, path):
        import model_compression_toolkit as mct
        mct.exporter.keras_export_model(model=model, save_model_path=str(path / "model_quantized.keras"))
        return path / "model_quantized.keras"
    ```
    """


@hookspec(firstresult=True)
def tl_export_tflite(model: Any, calibration: Calibration, preprocessing: Preprocessing, path: Path,
                     reporter: Reporter) -> Mapping[str, Path] | None:
    """*Answer hook, framework step* — first non-None result wins. Write TFLite models of the float
    classifier for targets other than the IMX500 (`"tflite": true`, and the SDK quantize
    notebook's configuration). The built-in `keras.tflite` writes `model.tflite` (float, the
    training preprocessing's input) and `model_quantized.tflite` (full int8 with the preprocessing
    inside: uint8 raw pixels in, float scores out). `tl_load_model` loads either file to evaluate it.

    - `model` (`Any`): the float classifier.
    - `calibration` (`tlcore.quantization.Calibration`): raw-pixel batches of training images.
    - `preprocessing` (`Preprocessing`): how the model was trained to see pixels.
    - `path` (`pathlib.Path`): a staging folder.
    - `reporter` (`Reporter`): for the activity line.
    - Returns: `{"float": path, "quantized": path}` of the two files.

    ```python
    @hookimpl
    def tl_export_tflite(model, path):
        import tensorflow as tf
        (path / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        ...
        return {"float": path / "model.tflite", "quantized": path / "model_quantized.tflite"}
    ```
    """


@hookspec(firstresult=True)
def tl_convert(model_file: Path, path: Path, config: RunConfig, reporter: Reporter) -> Conversion | None:
    """*Answer hook* — first non-None result wins. Turn the exported model into the device's package.
    The built-in `imx500.converter` (keras and torch) runs Sony's `imxconv-tf` or `imxconv-pt`
    with live stages, keeps `packerOut.zip` and the memory report, and says whether the model fits
    in the chip. Without the converter or without Java it answers `converted=False` with what to
    install; the quantized model is still published. A conversion that fails is an error.

    - `model_file` (`pathlib.Path`): the file `tl_export_quantized` wrote.
    - `path` (`pathlib.Path`): the staging folder; put the package's files here.
    - `config` (`RunConfig`): `imx500_input_persistency` and the rest.
    - `reporter` (`Reporter`): for the activity line.
    - Returns: a `tlcore.quantization.Conversion(converted, files, fits, memory, next_step, reason, tool)`.

    ```python
    from tlcore.quantization import Conversion

    @hookimpl
    def tl_convert(model_file, path):
        subprocess.run(["my-npu-compiler", str(model_file), "-o", str(path / "model.bin")], check=True)
        return Conversion(converted=True, files=("model.bin",), next_step="copy model.bin to the board")
    ```
    """


@hookspec
def tl_evaluate(predictions: Predictions, dataset: DatasetIndex, config: RunConfig,
                reporter: Reporter) -> dict[str, Any] | None:
    """*Collecting*: every plugin is asked. Compute metrics from the classifier's predictions on the
    validation images; metric plugins never see a model, so every metric works with every
    framework. The core merges the dicts into `results.json` and refuses a metric reported by two
    plugins (block one of them). The built-in `metrics.top1` reports `top_1_accuracy` and
    `num_images`; `metrics.top5` reports `top_5_accuracy` when there are more than 5 classes;
    `metrics.per_class` reports `per_class` (Top-1 accuracy, images, precision, recall and F1 of each
    class).

    - `predictions` (`tlcore.evaluation.Predictions`): `scores` (n x outputs), `label_ids` (the
      true ids), `paths`, `class_names` (by output index), `predicted` (best ids) and `top_k(k)`.
    - `dataset` (`DatasetIndex`): the images and labels.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages.
    - Returns: a JSON-serialisable dict of metrics, or `None`.

    ```python
    @hookimpl
    def tl_evaluate(predictions):
        top3 = predictions.top_k(3)
        hits = (top3 == predictions.label_ids[:, None]).any(axis=1)
        return {"top_3_accuracy": float(hits.mean())}
    ```
    """


@hookspec
def tl_write_reports(predictions: Predictions, metrics: Mapping[str, Any], history: Sequence[Mapping[str, float]],
                     dataset: DatasetIndex, path: Path, config: RunConfig, reporter: Reporter,
                     health: HealthReport | None) -> list[str] | None:
    r"""*Collecting*: every plugin is asked, after evaluation. Write report files about the run (tables,
    pictures, a summary) into `path`, a staging folder: its files are moved into
    `evaluate_result_dir`, beside `results.json`, only when the whole run succeeded (a failed or
    interrupted run leaves the previous reports). Report plugins work over predictions and history,
    so they work for every framework. A file called `summary.*` is named at the end of `tl run`.
    The built-in `reports.tables`, `reports.figures` and `reports.tensorboard` write the confusion
    matrix, misclassified images, history and pictures (see [What a run writes](outputs.md));
    `reports.summary` is asked after them (trylast implementations are asked in registration order)
    and links every file in `path`, yours included, from `summary.html`. A plugin of yours that is not
    `trylast` is asked before it. Report files of an earlier run that this run did not write are
    removed when the new ones are published.

    - `predictions` (`tlcore.evaluation.Predictions`): scores, true ids and paths of the validation images.
    - `metrics` (`Mapping[str, Any]`): the merged metrics of `results.json`.
    - `history` (`Sequence[Mapping[str, float]]`): one dict per epoch (`epoch`, `loss`, `acc`, `val_loss`, `val_acc`).
    - `dataset` (`DatasetIndex`): class names and images.
    - `path` (`pathlib.Path`): the staging folder.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages.
    - `health` (`tlcore.health.HealthReport | None`): the data check's findings (`findings`: duplicates
      within and across the splits, likely wrong labels, classes with few images, imbalance; `checked`: what
      was checked), whose `data_health.csv` and `data_health.json` are already in `path`; None when the run
      did not check the data. `reports.summary` shows them in its "Data health" section.
    - Returns: the names of the files written, relative to `path`.

    ```python
    @hookimpl
    def tl_write_reports(predictions, path):
        wrong = predictions.predicted != predictions.label_ids
        (path / "wrong.txt").write_text("".join(f"{p}\n" for p, bad in zip(predictions.paths, wrong) if bad))
        return ["wrong.txt"]
    ```
    """


@hookspec
def tl_on_run_end(config: RunConfig, metrics: Mapping[str, Any], result: RunResult) -> None:
    """*Observer*: the run finished and its outputs were written.

    - `config` (`RunConfig`): the configuration.
    - `metrics` (`Mapping[str, Any]`): the merged metrics, as written to `results.json`.
    - `result` (`tlcore.run.RunResult`): `metrics`, `history` (one dict per epoch), `framework`,
      `saved_model_dir`, `results_file`, `plugins` (which plugin answered each step), `seconds`.

    ```python
    @hookimpl
    def tl_on_run_end(config, metrics, result):
        notify(f"{config.output_dir}: top-1 {metrics['top_1_accuracy']:.3f} in {result.seconds:.0f} s")
    ```
    """


@hookspec
def tl_on_run_failed(config: RunConfig, error: BaseException) -> None:
    """*Observer*: the run failed or was interrupted (Ctrl-C, SIGTERM, a notebook's stop button) after
    it started; nothing of it was published. Clean up what your plugin started. An exception raised
    here becomes a warning; it never hides the run's own error.

    - `config` (`RunConfig`): the configuration.
    - `error` (`BaseException`): what stopped the run (`KeyboardInterrupt` when interrupted).

    ```python
    @hookimpl
    def tl_on_run_failed(config, error):
        (config.output_dir / "history.csv").unlink(missing_ok=True)
    ```
    """
