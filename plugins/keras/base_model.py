"""The base model: a named Keras application (:mod:`tlplugins.keras.bases`; MobileNetV2 by default), without
its head, or the user's Keras model (``source_keras_model``)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.base_models import build_named
from tlcore.calls import describe_exception
from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED, ConfigKey
from tlcore.preprocessing import PRESETS, Preprocessing

from tlplugins.keras.distributed import scope
from tlplugins.keras.framework import KERAS
from tlplugins.keras.saved_model import warn_if_code

if TYPE_CHECKING:
    from tlcore.base_models import BaseModel
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = "keras"


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [
        ConfigKey("source_keras_model", "path", default=None, nullable=True, path_kind="file_or_dir",
                  help="your own base model: Keras SavedModel folder, .h5 or .keras file, in place of base_model"),
        SHARED["base_model"], SHARED["weights"], SHARED["mobilenet_alpha"],
    ]


def load_named(base: BaseModel, config: RunConfig, reporter: Reporter) -> Any:
    """The named base ``base`` (:mod:`tlplugins.keras.bases`) without its head, with the configured weights."""
    import tensorflow as tf

    weights = config.options["weights"]
    size = config.input_tensor_size
    alpha = config.options["mobilenet_alpha"]
    title = f"{base.title} (alpha {alpha:g}, " if "mobilenet_alpha" in base.options else f"{base.title} ("
    shown = "ImageNet" if weights == "imagenet" else ("random" if weights is None else str(weights))
    if config.seed is not None:
        tf.keras.utils.set_random_seed(config.seed)
    reporter.info(f"Base model: {title}{size}x{size}, {shown} weights, no top)")
    made_by = f"{base.title}(alpha={alpha:g}, include_top=False)" if "mobilenet_alpha" in base.options \
        else f"{base.title}(include_top=False)"
    model = build_named(base, config, reporter, lambda exc: (
        f"cannot load {base.title} weights from {weights}: {describe_exception(exc)}; the file must hold the weights "
        f"of Keras' {made_by}, as its save_weights writes them"))
    if weights is None:
        random_initialise(model, config.seed)
    return model


def saving_keras_version(path: Path) -> Any:
    """The Keras version recorded in an .h5 or .keras model file, or None."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("metadata.json")).get("keras_version")
        import h5py

        with h5py.File(path, "r") as handle:
            version = handle.attrs.get("keras_version")
            return version.decode() if isinstance(version, bytes) else version
    except Exception:  # not a file of either kind: nothing to say about versions
        return None


def random_initialise(model: Any, seed: int | None = None) -> None:
    """Random weights whose frozen features still tell images apart.

    Keras' default initialisation makes a frozen MobileNetV2 shrink its input by
    about 1e-10 on the way through, and He scaling puts it in a chaotic regime where
    features barely depend on the image. LeCun scaling (std = sqrt(1 / fan-in))
    keeps them informative but about a thousand times too small, so the last
    convolution is then scaled to give features of unit size on noise images (no
    data is used). The torch pack does the same.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    kernels = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
            kernel, fan_in = layer.depthwise_kernel, int(np.prod(layer.depthwise_kernel.shape[:2]))
        elif isinstance(layer, tf.keras.layers.Conv2D):
            kernel, fan_in = layer.kernel, int(np.prod(layer.kernel.shape[:-1]))
        else:
            continue
        kernel.assign(rng.normal(0.0, np.sqrt(1.0 / fan_in), kernel.shape).astype("float32"))
        kernels.append(kernel)
    size = model.inputs[0].shape[1] or 96
    noise = rng.uniform(-2, 2, (8, size, size, 3)).astype("float32")
    features = model(noise, training=False).numpy().mean(axis=(1, 2))
    kernels[-1].assign(kernels[-1] / max(float(features.std()), 1e-12))


def weights_only(path: Path) -> bool:
    """Whether ``path`` is an .h5 file of weights (save_weights) rather than a whole model."""
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            return "model_config" not in handle.attrs and "layer_names" in handle.attrs
    except Exception:  # not an HDF5 file
        return False


def load_user_model(path: Path, config: RunConfig, reporter: Reporter) -> Any:
    import tensorflow as tf

    if config.options["weights"] != "imagenet":
        reporter.warning('"weights" applies to a named base model only; it is ignored with "source_keras_model"')
    warn_if_code(path, reporter)
    try:
        model = tf.keras.models.load_model(str(path), compile=False)
    except Exception as exc:
        import keras

        saved_by = saving_keras_version(path)
        if saved_by and saved_by.split(".")[0] != keras.__version__.split(".")[0]:
            raise ModelError(
                f"{path} was saved by Keras {saved_by}, which this Keras ({keras.__version__}, bundled with "
                f"TensorFlow {tf.__version__}) cannot read; save it again with TensorFlow 2.15's tf.keras "
                f"(model.save('model.h5')) or as a SavedModel. Keras said: {describe_exception(exc)}"
            ) from None
        if weights_only(path):
            raise ModelError(f"{path} holds only weights, not a model; save the whole model with model.save()") from None
        raise ModelError(
            f"Keras cannot load the model {path}: {describe_exception(exc)}; give a Keras SavedModel folder or a "
            ".h5/.keras file written by model.save()"
        ) from None
    if not isinstance(model, tf.keras.Model):
        raise ModelError(f"{path} is a TensorFlow SavedModel but not a Keras model; save it with model.save()")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{path} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; tl needs one of each")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise ModelError(f"{path} takes input of shape {shape}; tl needs images (batch, height, width, channels)")
    height, width, channels = shape[1:]
    size = config.input_tensor_size
    if (height, width) != (None, None) and (height, width) != (size, size):
        fix = f"set input_tensor_size to {height}" if height == width else "use a model with a square input"
        raise ModelError(f"{path} expects {height}x{width} images but input_tensor_size is {size}; {fix}")
    if channels != 3:
        raise ModelError(f"{path} expects {channels}-channel images; tl feeds RGB images (3 channels)")
    if height is None:
        check_input_size(model, path, size)
    shown = f"{height}x{width}x{channels}" if height else f"any size x {channels}"
    reporter.info(f"Base model: {path} ({model.name}, {len(model.layers)} layers, input {shown})")
    say_assumed_input(path, config, reporter)
    return model


def say_assumed_input(path: Path, config: RunConfig, reporter: Reporter) -> None:
    """Without a ``preprocessing`` key, a user's model is fed Keras MobileNetV2's input range, [-1, 1]: say so in
    one line, since a model trained on [0, 1] (the SDK notebook's) or [0, 255] would learn from wrong input
    silently; a ``preprocessing.json`` beside the model (a model tl saved) that agrees keeps it quiet."""
    if config.preprocessing is not None:
        return
    assumed = Preprocessing.from_config(config, KERAS)
    written = (path if path.is_dir() else path.parent) / "preprocessing.json"
    try:
        saved = Preprocessing.from_dict(json.loads(written.read_text()))
    except FileNotFoundError:
        saved = None
    except (OSError, ValueError, KeyError, TypeError):
        reporter.warning(f"{written} is not a preprocessing tl wrote; it is ignored")
        saved = None
    if saved is not None and (saved.mean, saved.std) == (assumed.mean, assumed.std):
        return
    presets = {values: name for name, values in PRESETS.items()}
    if saved is not None:
        wanted = presets.get((saved.mean, saved.std))
        setting = f'"preprocessing": "{wanted}"' if wanted else \
            f'"preprocessing": {json.dumps({"mean": list(saved.mean), "std": list(saved.std)})}'
        reporter.warning(f'{written} says the model takes "{saved.name}" input, but without a "preprocessing" key '
                         f'tl feeds it "{assumed.name}" input; set {setting}')
        return
    reporter.warning(f'"source_keras_model" has no preprocessing.json and the configuration sets no "preprocessing": '
                     f'tl feeds the model pixels scaled to [-1, 1] ("{assumed.name}", as Keras\' MobileNetV2 expects); '
                     'for a model trained on [0, 1] (the SDK notebook\'s) set "preprocessing": "unit", on [0, 255] '
                     '"none"')


def takes(model: Any, size: int) -> Any:
    """Whether ``model`` (of any input size) can take size x size images: TensorFlow's shape inference,
    without computing (oneDNN's kernels compute on an empty feature map without an error)."""
    import tensorflow as tf

    try:
        output = model(tf.keras.Input((size, size, 3)), training=False)
    except Exception:
        return False
    return all(dim is None or dim > 0 for dim in tuple(output.shape)[1:])


def check_input_size(model: Any, path: Path, size: int) -> None:
    """Refuse an input size too small for a model of any input size, naming the smallest it takes."""
    if takes(model, size):
        return
    high = size
    while high < 4096 and not takes(model, high):
        high *= 2
    if not takes(model, high):
        raise ModelError(f"{path} cannot take {size}x{size} images, nor any size up to 4096; check the model")
    low = size  # fails; the smallest size that works lies in (low, high]
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if takes(model, middle) else (middle, high)
    raise ModelError(f"{path} takes images of at least {high}x{high} pixels (its layers reduce smaller ones to "
                     f"nothing), but input_tensor_size is {size}; set it to {high} or more")


@hookimpl(trylast=True)
def tl_load_base_model(config: RunConfig, reporter: Reporter, base: BaseModel | None) -> Any:
    import tensorflow as tf

    # A run starts here: drop what earlier runs in this process (a notebook kernel) left in Keras' global
    # state, so that layer names, memory and tracing do not grow from run to run.
    tf.keras.backend.clear_session()
    # float16 compute with float32 weights in the layers built from here on (a user's model keeps the dtypes
    # it was saved with); set every run, so that a run after a mixed-precision one is float32 again
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if config.mixed_precision is True else "float32")

    with reporter.activity("Loading the base model"), scope():  # with several workers, in the strategy's scope
        if config.options["source_keras_model"] is not None:
            return load_user_model(config.options["source_keras_model"], config, reporter)
        if base is None:
            raise ModelError('no base model: "base_model" names none (is the plugin that declares it blocked?) and '
                             '"source_keras_model" is not set')
        return load_named(base, config, reporter)
