"""TFLite models of a Keras classifier, for targets other than the IMX500 (and the SDK's quantize notebook).

``model.tflite`` is the float model: it takes the preprocessed input, like the
SavedModel. ``model_quantized.tflite`` is fully int8, calibrated on training images,
with the preprocessing inside: it takes raw RGB pixels as uint8 (0-255) and returns
float scores.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from tlcore.hookspecs import hookimpl
from tlcore.report import quiet_native_stderr

from tlplugins.keras.quantize import taking_raw_pixels

if TYPE_CHECKING:
    from pathlib import Path

    from tlcore.preprocessing import Preprocessing
    from tlcore.quantization import Calibration
    from tlcore.report import Reporter

TL_FRAMEWORK = "keras"
FLOAT_FILE = "model.tflite"
QUANTIZED_FILE = "model_quantized.tflite"


@hookimpl(trylast=True)
def tl_export_tflite(model: Any, calibration: Calibration, preprocessing: Preprocessing, path: Path,
                     reporter: Reporter) -> Mapping[str, Path] | None:
    import numpy as np
    import tensorflow as tf

    with reporter.activity("Writing the TFLite models") as activity, quiet_native_stderr(reporter):
        activity.stage(FLOAT_FILE)
        (path / FLOAT_FILE).write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        activity.stage(f"{QUANTIZED_FILE}, calibrating on {calibration.images} images")
        size = preprocessing.size

        def representative() -> Iterator[Any]:
            # One image spanning 0-255 first, so that the uint8 input's scale is exactly one pixel value.
            yield [np.linspace(0, 255, size * size * 3, dtype=np.float32).reshape(1, size, size, 3)]
            for batch in calibration():
                for image in batch:
                    yield [image[None]]

        converter = tf.lite.TFLiteConverter.from_keras_model(taking_raw_pixels(model, preprocessing))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
        (path / QUANTIZED_FILE).write_bytes(converter.convert())
    return {"float": path / FLOAT_FILE, "quantized": path / QUANTIZED_FILE}


class TFLiteModel:
    """A TFLite model run by TensorFlow's interpreter; integer input is quantized with its scale and zero point."""

    def __init__(self, file: Path, reporter: Reporter) -> None:
        import tensorflow as tf

        with quiet_native_stderr(reporter):  # "Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interpreter = tf.lite.Interpreter(model_path=str(file), num_threads=os.cpu_count())
            self.interpreter.allocate_tensors()
        self.batch: int | None = None

    def predict(self, images: Any) -> Any:
        import numpy as np

        interpreter = self.interpreter
        details = interpreter.get_input_details()[0]
        if self.batch != len(images):
            interpreter.resize_tensor_input(details["index"], [len(images), *images.shape[1:]])
            interpreter.allocate_tensors()
            self.batch = len(images)
            details = interpreter.get_input_details()[0]
        if details["dtype"] in (np.uint8, np.int8):
            scale, zero = details["quantization"]
            limits = np.iinfo(details["dtype"])
            images = np.clip(np.round(images / scale + zero), limits.min, limits.max).astype(details["dtype"])
        interpreter.set_tensor(details["index"], images)
        interpreter.invoke()
        output = interpreter.get_output_details()[0]
        scores = interpreter.get_tensor(output["index"])
        if output["dtype"] in (np.uint8, np.int8):
            scale, zero = output["quantization"]
            scores = (scores.astype(np.float32) - zero) * scale
        return scores
