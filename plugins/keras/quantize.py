"""Quantizing a Keras classifier for the IMX500 with MCT, and exporting it for Sony's converter.

The quantized model takes raw RGB pixels (0-255), as the device gives them: the
preprocessing is put in front of the classifier as plain TensorFlow arithmetic
(the converter refuses Keras' Rescaling and Normalization layers), and MCT
quantizes it with the rest. The export is MCT's ``.keras`` format, which
``imxconv-tf`` converts and ``mct_quantizers.keras_load_quantized_model`` loads.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator

from tlcore.hookspecs import hookimpl

from tlplugins.imx500.tpc import TPC_VERSION, target_platform

if TYPE_CHECKING:
    from pathlib import Path

    from tlcore.config import ConfigKey, RunConfig
    from tlcore.preprocessing import Preprocessing
    from tlcore.quantization import Calibration
    from tlcore.report import Reporter

TL_FRAMEWORK = "keras"
QUANTIZED_FILE = "model_quantized.keras"


def taking_raw_pixels(model: Any, preprocessing: Preprocessing) -> Any:
    """``model`` behind ``(pixel - mean) / std``, so that it takes raw RGB pixels 0-255."""
    import tensorflow as tf

    size = preprocessing.size
    inputs = tf.keras.Input((size, size, 3), name="rgb")
    if preprocessing.uniform:
        normalised = inputs * (1.0 / preprocessing.std[0]) - preprocessing.mean[0] / preprocessing.std[0]
    else:
        scale = tf.constant([1.0 / s for s in preprocessing.std], dtype=tf.float32)
        offset = tf.constant([m / s for m, s in zip(preprocessing.mean, preprocessing.std, strict=True)],
                             dtype=tf.float32)
        normalised = inputs * scale - offset
    return tf.keras.Model(inputs, model(normalised), name=f"{model.name}_rgb")


def representative(calibration: Calibration) -> Callable[[], Iterator[Any]]:
    """MCT's representative dataset: a callable giving an iterator of ``[batch]`` lists."""
    def batches() -> Iterator[Any]:
        for batch in calibration():
            yield [batch]
    return batches


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [TPC_VERSION]


@hookimpl(trylast=True)
def tl_quantize(model: Any, calibration: Calibration, preprocessing: Preprocessing, config: RunConfig) -> Any:
    import model_compression_toolkit as mct

    raw = taking_raw_pixels(model, preprocessing)
    platform = target_platform(config)
    if config.quantization_method == "gptq":
        steps = config.gptq_epochs * len(calibration)
        done = [0]

        def log(*_: Any) -> None:
            done[0] += 1
            calibration.stage(f"GPTQ: step {done[0]}/{steps}")

        # Without Hessian weighting: with it, MCT spends minutes per batch on a CPU before the first step.
        settings = mct.gptq.get_keras_gptq_config(n_epochs=config.gptq_epochs, use_hessian_based_weights=False,
                                                  use_hessian_sample_attention=False, log_function=log)
        quantized, _ = mct.gptq.keras_gradient_post_training_quantization(
            raw, representative(calibration), gptq_config=settings, target_platform_capabilities=platform)
    else:
        quantized, _ = mct.ptq.keras_post_training_quantization(
            raw, representative(calibration), target_platform_capabilities=platform)
    return quantized


@hookimpl(trylast=True)
def tl_export_quantized(model: Any, path: Path, reporter: Reporter) -> Path | None:
    import model_compression_toolkit as mct

    file = path / QUANTIZED_FILE
    with reporter.activity("Exporting the quantized model"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mct.exporter.keras_export_model(model=model, save_model_path=str(file))
    return file


def load_quantized(file: Path) -> Any:
    import mct_quantizers

    return mct_quantizers.keras_load_quantized_model(str(file), compile=False)
