"""The keras framework: what the core needs to know of it, and prediction."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from tlcore.frameworks import MIXED_PRECISION_CAPABILITY, OPTIONAL_KEYS, Devices, Framework, Quieting, gpu_description
from tlcore.hookspecs import hookimpl

from tlplugins.keras.distributed import spread_locally
from tlplugins.keras.tflite import TFLiteModel

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import RunConfig

TL_FRAMEWORK = "keras"

KERAS = Framework(
    name="keras",
    summary="TensorFlow 2.15 tf.keras: a Keras application (base_model, see `tl models`) or your Keras model "
            "(source_keras_model)",
    source_key="source_keras_model",
    keys=OPTIONAL_KEYS,
    default_preprocessing="mobilenet_v2",
    layout="NHWC",
    model_format="TensorFlow SavedModel: tf.keras.models.load_model(folder), or tf.saved_model.load(folder)"
                 ".signatures['serving_default'] (input 'image', output 'predictions')",
    requires=("tensorflow",),
    install="install tl again (pip install -e .), which installs TensorFlow 2.15",
    # TF 2.15 logs harmless CUDA-factory clashes as errors; MCT (quantization) reports through tqdm
    quiet=Quieting(
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"},
        loggers=("tensorflow", "Model Compression Toolkit"),
        message_noise=(  # TensorFlow's wrapping of an error raised inside a graph: the error itself is what to show
            r"\{\{function_node [^}]*\}\}\s*",
            r"Graph execution error:\s*",
            r"(?m)^Detected at node .* defined at \(most recent call last\):\n(?:(?:[ \t]+.*)?\n)*",
        ),
    ),
)

_inference: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@hookimpl
def tl_frameworks() -> list[Framework]:
    return [KERAS]


def inference(model: Any) -> Any:
    """``model`` in inference mode as one graph for any batch size (traced once, not per batch shape)."""
    import tensorflow as tf

    if model not in _inference:
        reference = weakref.ref(model)  # weak, so that the cache entry goes with the model

        def call(images: Any) -> Any:
            live = reference()
            assert live is not None  # the cache entry goes with the model
            return live(images, training=False)

        _inference[model] = tf.function(call, input_signature=[tf.TensorSpec(model.inputs[0].shape, tf.float32)])
    return _inference[model]


@hookimpl(trylast=True)
def tl_devices(config: RunConfig) -> Devices | None:
    """The GPUs the run computes on (all of them with a strategy, else the first, where TensorFlow places
    operations), else the CPU; and the strategy's devices when it mirrors over several (set up here for a run
    alone: :func:`tlplugins.keras.distributed.spread_locally`)."""
    import tensorflow as tf

    spread = ""
    distributed = spread_locally(config)
    if isinstance(distributed, tf.distribute.MirroredStrategy):
        devices = distributed.extended.worker_devices
        shown = ", ".join(name.rpartition("device:")[2] for name in devices)
        spread = f"mirrored over {len(devices)} device{'s' if len(devices) != 1 else ''} ({shown}; " \
                 "tf.distribute.MirroredStrategy)"
    gpus = tf.config.list_physical_devices("GPU")[:None if distributed is not None else 1]
    described, capabilities = [], []
    for index, gpu in enumerate(gpus):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(details.get("compute_capability"))
        described.append(gpu_description(index, details.get("device_name", gpu.name), capabilities[-1]))
    benefits = bool(gpus) and all(c is not None and tuple(c) >= MIXED_PRECISION_CAPABILITY for c in capabilities)
    return Devices(tuple(described), mixed_precision_benefits=benefits, spread=spread)


@hookimpl(trylast=True)
def tl_predict(model: Any, images: np.ndarray) -> np.ndarray | None:
    if isinstance(model, TFLiteModel):
        return model.predict(images)
    return inference(model)(images).numpy()
