"""The built-in plugins of tl, registered like any third-party plugin.

Each module implements hooks of :mod:`tlcore.hookspecs` and imports heavy
libraries (TensorFlow, PyTorch) only inside its hook bodies, so listing plugins is
instant. Framework packs (``keras/``, ``torch/``, and the top removals of
``top_removal/``) declare the framework they serve with ``TL_FRAMEWORK``; the
others are framework-neutral.
"""

BUILTIN_PLUGINS = (
    "plugins.datasets.imagenet_folder",
    "plugins.keras.framework",
    "plugins.keras.distributed",
    "plugins.keras.base_model",
    "plugins.top_removal.classifier_head",
    "plugins.keras.trainer",
    "plugins.keras.saved_model",
    "plugins.keras.quantize",
    "plugins.keras.tflite",
    "plugins.torch.framework",
    "plugins.torch.distributed",
    "plugins.torch.base_model",
    "plugins.top_removal.torch_head",
    "plugins.torch.trainer",
    "plugins.torch.saving",
    "plugins.torch.quantize",
    "plugins.imx500.layers",
    "plugins.imx500.converter",
    "plugins.metrics.top1",
    "plugins.metrics.per_class",
    "plugins.metrics.top5",
    # The built-ins are trylast, and trylast implementations are asked in registration order: the summary,
    # registered after the other reports, is asked after them (and after installed report plugins that are not
    # trylast) and links what they wrote.
    "plugins.reports.tables",
    "plugins.reports.figures",
    "plugins.reports.tensorboard",
    "plugins.reports.summary",
)
