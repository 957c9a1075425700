"""Saving the trained classifier as a TensorFlow SavedModel (Keras format inside)."""

from tlcore.hookspecs import hookimpl


@hookimpl(trylast=True)
def tl_save_model(model, path, reporter):
    with reporter.activity("Saving the SavedModel"):
        model.save(str(path), save_format="tf", include_optimizer=False)
    return path
