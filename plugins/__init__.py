"""The built-in plugins of tl, registered like any third-party plugin.

Each module implements hooks of :mod:`tlcore.hookspecs` and imports heavy
libraries (TensorFlow) only inside its hook bodies, so listing plugins is instant.
"""

BUILTIN_PLUGINS = (
    "plugins.datasets.imagenet_folder",
    "plugins.keras.base_model",
    "plugins.top_removal.classifier_head",
    "plugins.keras.trainer",
    "plugins.keras.saved_model",
    "plugins.keras.top1",
)
