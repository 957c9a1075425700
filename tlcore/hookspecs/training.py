"""The run up to a saved model: the dataset, the workers and devices, the base model, training, saving and
prediction."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from tlcore.hookspecs.markers import hookspec

if TYPE_CHECKING:
    import numpy as np

    from tlcore.base_models import BaseModel
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.distributed import Cluster
    from tlcore.frameworks import Devices
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter
    from tlcore.training import RunEvents


@hookspec
def tl_on_run_start(config: RunConfig, reporter: Reporter) -> None:
    """*Observer*: the configuration and the framework are checked and the run starts. Raise a
    `tlcore.errors.TLError` to stop the run before any work (its one line is the run's error).

    - `config` (`RunConfig`): typed values, absolute `pathlib.Path`s, and `options` (the keys
      declared by plugins).
    - `reporter` (`Reporter`): for messages.

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
def tl_load_base_model(config: RunConfig, reporter: Reporter, base: BaseModel | None) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Load the model to transfer-learn
    from. The built-in `keras.base_model` and `torch.base_model` build the named base (`base_model`,
    `weights`; `mobilenet_alpha` for MobileNetV2) without its head, or load the user's model
    (`source_keras_model`, `source_torch_model`).

    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages.
    - `base` (`BaseModel | None`): the named base the configuration chose (`tlcore.base_models`), checked;
      None when it gives a model of the user's (or no plugin declares `base_model`).
    - Returns: a model object of the framework; the core passes it on without looking inside.

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_load_base_model(config):
        import tensorflow as tf
        size = config.input_tensor_size
        return tf.keras.applications.DenseNet121(input_shape=(size, size, 3), include_top=False, weights=None)
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
def tl_check_model(model: Any, config: RunConfig, reporter: Reporter, base: BaseModel | None) -> None:
    """*Collecting*: every plugin is asked, after the top layers are removed and before any training,
    so a base model that cannot work where it is going is refused at once, not after an hour of
    training. Raise `tlcore.errors.ModelError` (one line: the layer, its type, what to do) to stop
    the run; warn through the reporter for a risky layer. The built-in `imx500.layers` (keras and
    torch) checks the layers against what Sony's IMX500 converter accepts, and a named base against
    what tl measured of it (converts, fits at this input size): with `"quantize": true` a refused layer
    or base is an error, otherwise a warning.

    - `model` (`Any`): the feature extractor, the result of `tl_remove_top_layer`.
    - `base` (`BaseModel | None`): the named base it was built from; None for a model of the user's.
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
def tl_load_model(path: Path, reporter: Reporter, purpose: str) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Load a classifier that
    `tl_save_model` saved (for prediction and quantization of a finished run), or the quantized
    model `tl_export_quantized` wrote (to evaluate it, and for prediction).

    A model folder may come from someone else: load it in a form whose loading runs no Python code
    from the file where the framework has one, and where it has none (a pickle, a Keras `Lambda`
    layer), say so before loading, in a line containing "can run code".

    - `path` (`pathlib.Path`): the `saved_model` folder, or the `imx500` folder of a quantized model.
    - `reporter` (`Reporter`): for messages.
    - `purpose` (`str`): `"predict"` (the model only scores images: the safest form will do) or
      `"quantize"` (the quantizer needs a model it can trace).
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
