"""A tl plugin: use the output of a chosen layer as the features.

The built-in top removal cuts off classification layers at the end of a model.
This plugin instead cuts at the layer named by the configuration key
``cut_at_layer`` (or, when it is null, at the last layer that outputs a feature
map), which also lets you train on earlier, more general features.
"""

import difflib

from tlcore.config import ConfigKey
from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl

PLUGIN = "cut-at-layer"
TL_FRAMEWORK = "keras"
"""It cuts Keras models: asked only when the configuration selects the keras framework."""


@hookimpl
def tl_config_keys():
    return [
        ConfigKey("cut_at_layer", "string", default=None, nullable=True,
                  help="layer whose output becomes the features; null = the last layer with a feature-map output"),
    ]


def find_layer(model, name):
    """The layer called ``name``, or the last layer with a 4-D output when ``name`` is None."""
    if name is None:
        for layer in reversed(model.layers):
            if len(layer.output.shape) == 4:
                return layer
        raise ModelError(f'{PLUGIN}: model "{model.name}" has no layer with a feature-map output; set "cut_at_layer"')
    names = [layer.name for layer in model.layers]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f'did you mean "{close[0]}"?' if close else "see model.summary() for the layer names"
        raise ModelError(f'{PLUGIN}: model "{model.name}" has no layer "{name}" ("cut_at_layer"); {hint}')
    return model.get_layer(name)


@hookimpl
def tl_remove_top_layer(model, config, reporter):
    import tensorflow as tf

    layer = find_layer(model, config.options["cut_at_layer"])
    position = model.layers.index(layer)
    removed = model.layers[position + 1:]
    listed = ", ".join(f"{each.name} ({type(each).__name__})" for each in removed) or "none"
    reporter.info(f'{PLUGIN}: cut "{model.name}" at layer "{layer.name}"; removed {len(removed)} layer(s): {listed}')
    return tf.keras.Model(inputs=model.inputs, outputs=layer.output, name=f"{model.name}_cut_at_{layer.name}")
