"""Saving the trained classifier as a TensorFlow SavedModel (Keras format inside), and loading it back."""

from tlcore.calls import describe_exception
from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl

TL_FRAMEWORK = "keras"


@hookimpl(trylast=True)
def tl_save_model(model, path, reporter):
    import tensorflow as tf

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
def tl_load_model(path, reporter):
    """The float SavedModel of ``saved_model/`` (or an .h5 / .keras file), the quantized model of
    ``imx500/``, or a ``.tflite`` file."""
    import tensorflow as tf

    from plugins.keras.quantize import QUANTIZED_FILE, load_quantized
    from plugins.keras.tflite import TFLiteModel

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
