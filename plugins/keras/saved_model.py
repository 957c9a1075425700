"""Saving the trained classifier as a TensorFlow SavedModel (Keras format inside)."""

import time

from tlcore.hookspecs import hookimpl


@hookimpl(trylast=True)
def tl_save_model(model, path, reporter):
    started = time.monotonic()
    reporter.info("Saving the SavedModel ...")
    model.save(str(path), save_format="tf", include_optimizer=False)
    reporter.info(f"Saved the SavedModel in {time.monotonic() - started:.1f} s")
    return path
