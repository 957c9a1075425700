"""The built-in top-layer removal for Keras models: cut off the classification head at the end of a model.

Walking back from the output, layers that only classify (Dense, Dropout,
Softmax, softmax/sigmoid/linear Activation, Flatten, Reshape, and 1x1
convolutions on a 1x1 map) are removed; the first layer before them (typically
global pooling or the last feature map) becomes the feature output. With ``"remove_top": false`` nothing is
removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED, ConfigKey
from tlplugins.top_removal import NOTHING_REMOVED, unlike_a_classifier

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = "keras"

HEAD_ACTIVATIONS = ("softmax", "sigmoid", "linear")


def is_head_layer(layer: Any) -> bool:
    import tensorflow as tf

    layers = tf.keras.layers
    if isinstance(layer, (layers.Dense, layers.Dropout, layers.Softmax, layers.Flatten, layers.Reshape)):
        return True
    if isinstance(layer, layers.Activation):
        return getattr(layer.activation, "__name__", "") in HEAD_ACTIVATIONS
    if isinstance(layer, layers.Conv2D) and tuple(layer.kernel_size) == (1, 1):
        shape = layer.output_shape
        return isinstance(shape, tuple) and len(shape) == 4 and tuple(shape[1:3]) == (1, 1)
    return False


def split_head(model: Any) -> Any:
    """``(feature_layer, removed_layers)`` for ``model``; removed is empty when it has no top."""
    import tensorflow as tf

    layers = list(model.layers)
    cut = len(layers)
    while cut > 0 and is_head_layer(layers[cut - 1]):
        cut -= 1
    if cut == 0 or isinstance(layers[cut - 1], tf.keras.layers.InputLayer):
        raise ModelError(
            f'model "{model.name}" has no layer that could be a feature output: every layer is a classification '
            "layer; use a model with convolutional or pooling layers, or install a top-removal plugin"
        )
    return layers[cut - 1], layers[cut:]


def has_softmax(layer: Any) -> bool:
    import tensorflow as tf

    return isinstance(layer, tf.keras.layers.Softmax) or \
        getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [SHARED["remove_top"]]


@hookimpl(trylast=True)
def tl_remove_top_layer(model: Any, config: RunConfig, reporter: Reporter) -> Any:
    if config.options["remove_top"] is False:
        reporter.info(f'{NOTHING_REMOVED}the output of "{model.layers[-1].name}"')
        return model
    feature_layer, removed = split_head(model)
    if not removed:
        reporter.info(f'Top layers: none to remove; features are the output of "{feature_layer.name}"')
        return model
    names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in removed)
    reporter.info(f'Top layers removed: {names}; features are the output of "{feature_layer.name}"')
    shape = removed[-1].output_shape
    width = shape[-1] if isinstance(shape, tuple) and shape and isinstance(shape[-1], int) else None
    warning = unlike_a_classifier(removed[-1].name, width, any(has_softmax(layer) for layer in removed))
    if warning:
        reporter.warning(warning)
    return cut_at(model, feature_layer)


def cut_at(model: Any, layer: Any) -> Any:
    """``model`` from its inputs to ``layer``'s output.

    A nested model (e.g. the feature extractor inside a model tl saved) also has an
    output in its inner graph, so each of the layer's outputs is tried, latest call
    first, until one belongs to ``model``'s own graph.
    """
    import tensorflow as tf

    for node in range(len(layer.inbound_nodes) - 1, 0, -1):
        try:
            return tf.keras.Model(inputs=model.inputs, outputs=layer.get_output_at(node), name=f"{model.name}_features")
        except ValueError:  # a tensor of another graph: "Graph disconnected"
            continue
    return tf.keras.Model(inputs=model.inputs, outputs=layer.get_output_at(0), name=f"{model.name}_features")
