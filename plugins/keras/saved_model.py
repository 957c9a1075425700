"""Saving the trained classifier as a TensorFlow SavedModel (Keras format inside), and loading it back."""

from __future__ import annotations

import zipfile
from typing import TYPE_CHECKING, Any, Iterator

from tlcore.calls import describe_exception
from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl

from tlplugins.keras.distributed import strategy
from tlplugins.keras.quantize import QUANTIZED_FILE, load_quantized
from tlplugins.keras.tflite import TFLiteModel

if TYPE_CHECKING:
    from pathlib import Path

    from tlcore.report import Reporter

TL_FRAMEWORK = "keras"


def float32_model(model: Any) -> Any:
    """``model`` itself, or with mixed precision (or several workers) a copy computing in float32 with the same
    weights: the saved model is float32 (what MCT quantizes, and what runs everywhere)."""
    import tensorflow as tf

    if strategy() is None and all(layer.dtype_policy.name == "float32" for layer in _all_layers(model)):
        return model  # (with several workers, always a copy: plain variables, saved by the chief alone)

    def float32(node: Any) -> Any:
        # every layer's dtype policy (a Policy object's config, or "mixed_float16") -> float32
        if isinstance(node, dict):
            return {key: "float32" if key == "dtype" and (isinstance(value, dict) or str(value).startswith("mixed"))
                    else float32(value) for key, value in node.items()}
        if isinstance(node, list):
            return [float32(value) for value in node]
        return node

    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("float32")
    try:
        copy = tf.keras.Model.from_config(float32(model.get_config()))
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def _all_layers(model: Any) -> Iterator[Any]:
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


@hookimpl(trylast=True)
def tl_save_model(model: Any, path: Path, reporter: Reporter) -> Any:
    import tensorflow as tf

    model = float32_model(model)
    with reporter.activity("Saving the SavedModel"):
        # One explicit serving signature instead of Keras' per-layer traces: several times faster to
        # write, and the folder still loads with tf.keras.models.load_model, tf.saved_model.load and
        # the TFLite converter.
        serve = tf.function(
            lambda image: {"predictions": model(image, training=False)},
            input_signature=[tf.TensorSpec(model.inputs[0].shape, tf.float32, name="image")],
        )
        model.save(str(path), save_format="tf", include_optimizer=False, save_traces=False,
                   signatures={"serving_default": serve.get_concrete_function()})
    return path


@hookimpl(trylast=True)
def tl_load_model(path: Path, reporter: Reporter) -> Any:
    """The float SavedModel of ``saved_model/`` (or an .h5 / .keras file), the quantized model of
    ``imx500/``, or a ``.tflite`` file. A model with ``Lambda`` layers is said to run code before it is loaded."""
    import tensorflow as tf

    warn_if_code(path, reporter)
    quantized = path / QUANTIZED_FILE
    with reporter.activity("Loading the model"):
        try:
            if path.suffix == ".tflite":
                return TFLiteModel(path, reporter)
            if quantized.is_file():
                return load_quantized(quantized)
            return tf.keras.models.load_model(str(path), compile=False)
        except Exception as exc:
            raise ModelError(f"Keras cannot load the model in {path}: {describe_exception(exc)}") from None


CODE_MARKERS = (b'"class_name": "Lambda"', b'"class_name":"Lambda"')
"""How a Keras model's saved configuration names a Lambda layer, whose Python bytecode Keras runs when it loads
the model (tl's own models have none)."""


def carries_code(path: Path) -> bool:
    """Whether the Keras model at ``path`` (a SavedModel folder, or an .h5 / .keras file) has Lambda layers, found
    in its saved configuration without loading it."""
    files = [path / "keras_metadata.pb"] if path.is_dir() else [path]
    for file in files:
        try:
            data = file.read_bytes()
        except OSError:
            continue
        if file.suffix == ".keras":
            try:
                with zipfile.ZipFile(file) as archive:
                    data = archive.read("config.json")
            except (OSError, KeyError, zipfile.BadZipFile):
                continue
        if any(marker in data for marker in CODE_MARKERS):
            return True
    return False


def warn_if_code(path: Path, reporter: Reporter) -> None:
    """Say, before Keras loads ``path``, that it can run code, when it has Lambda layers."""
    if carries_code(path):
        reporter.warning(f"{path} has Lambda layers: Keras runs their Python code when it loads the model, so this "
                         "model can run code; load only models you trust")
