"""Saving the trained classifier as a TensorFlow SavedModel (Keras format inside)."""

from tlcore.hookspecs import hookimpl


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
