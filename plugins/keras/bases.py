"""The Keras base models tl builds by name: Keras' applications, without their classification head.

Every one is built with ``include_top=False`` (its head is never built) and without the input scaling some of
them carry as layers (``Rescaling``, ``Normalization``): tl's preprocessing does that scaling instead, and builds
it into the quantized model, as the IMX500 converter needs. What ``"weights"`` means for each: ``"imagenet"``,
Keras' ImageNet weights (downloaded once into ``~/.keras/models``, or a copy already there); null, random
weights; a file, weights saved from the same application built with ``include_top=False``
(``model.save_weights("weights.h5")``).
"""

from __future__ import annotations

from typing import Any, Mapping

from tlcore.base_models import BaseModel, keras_cache
from tlcore.hookspecs import hookimpl

from tlplugins.imx500.measured import imx500_status

TL_FRAMEWORK = "keras"

INPUT_SCALING = ("Rescaling", "Normalization")
"""Layers that scale pixels at a model's input: tl's preprocessing does it instead."""


def application(factory: str, *, preprocessing_option: bool = True, **arguments: Any) -> Any:
    """``build(size, weights, options)`` for ``tf.keras.applications.<factory>`` without its head; with
    ``preprocessing_option``, the application is asked to leave out its input scaling, else the scaling layers
    are taken out after it is built."""

    def build(size: int, weights: Any, options: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        build = getattr(tf.keras.applications, factory)
        extra = dict(arguments)
        if preprocessing_option:
            extra["include_preprocessing"] = False
        model = build(input_shape=(size, size, 3), include_top=False,
                      weights=str(weights) if weights not in ("imagenet", None) else weights, **extra)
        return model if preprocessing_option else without_input_scaling(model)

    return build


def build_mobilenet_v2(size: int, weights: Any, options: Mapping[str, Any]) -> Any:
    import tensorflow as tf

    return tf.keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=options.get("mobilenet_alpha", 1.0), include_top=False,
        weights=str(weights) if weights not in ("imagenet", None) else weights)


def without_input_scaling(model: Any) -> Any:
    """``model`` with its input-scaling layers (:data:`INPUT_SCALING`) replaced by identities, its other weights
    kept."""
    import tensorflow as tf

    if not any(type(layer).__name__ in INPUT_SCALING for layer in model.layers):
        return model

    def clone(layer: Any) -> Any:
        if type(layer).__name__ in INPUT_SCALING:
            return tf.keras.layers.Activation("linear", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return copy


def keras_base(name: str, title: str, build: Any, parameters: int, feature_size: int, preprocessing: str,
               weights_file: str, default_size: int = 224, **extra: Any) -> BaseModel:
    return BaseModel(name=name, framework="keras", title=title, build=build, parameters=parameters,
                     feature_size=feature_size, preprocessing=preprocessing, default_size=default_size,
                     head="never built (include_top=False)", imagenet_weights="Keras applications",
                     weights_file=keras_cache(weights_file), imx500=imx500_status("keras", name), **extra)


BASES: tuple[tuple[Any, ...], ...] = (
    ("mobilenet_v2", "MobileNetV2", build_mobilenet_v2, 2_223_872, 1280, "mobilenet_v2",
     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", 224, {"options": ("mobilenet_alpha",)}),
    ("mobilenet_v3_small", "MobileNetV3-Small", application("MobileNetV3Small"), 927_008, 576, "mobilenet_v2",
     "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", 224, {}),
    ("mobilenet_v3_large", "MobileNetV3-Large", application("MobileNetV3Large"), 2_971_952, 960, "mobilenet_v2",
     "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5", 224, {}),
    ("efficientnet_b0", "EfficientNet-B0", application("EfficientNetB0", preprocessing_option=False), 4_007_548,
     1280, "imagenet", "efficientnetb0_notop.h5", 224, {}),
    ("efficientnet_v2_b0", "EfficientNetV2-B0", application("EfficientNetV2B0"), 5_858_704, 1280, "imagenet",
     "efficientnetv2-b0_notop.h5", 224, {}),
    ("efficientnet_v2_b1", "EfficientNetV2-B1", application("EfficientNetV2B1"), 6_860_052, 1280, "imagenet",
     "efficientnetv2-b1_notop.h5", 240, {}),
    ("efficientnet_v2_b2", "EfficientNetV2-B2", application("EfficientNetV2B2"), 8_687_086, 1408, "imagenet",
     "efficientnetv2-b2_notop.h5", 260, {}),
    ("regnet_x_200mf", "RegNetX-200MF (RegNetX002)", application("RegNetX002"), 2_315_792, 368, "unit",
     "regnetx002_notop.h5", 224, {}),
    ("regnet_y_200mf", "RegNetY-200MF (RegNetY002)", application("RegNetY002"), 2_793_996, 368, "unit",
     "regnety002_notop.h5", 224, {}),
    ("regnet_y_400mf", "RegNetY-400MF (RegNetY004)", application("RegNetY004"), 3_903_144, 440, "unit",
     "regnety004_notop.h5", 224, {}),
)


@hookimpl
def tl_base_models() -> list[BaseModel]:
    return [keras_base(name, title, build, parameters, features, preprocessing, weights_file, size, **extra)
            for name, title, build, parameters, features, preprocessing, weights_file, size, extra in BASES]
