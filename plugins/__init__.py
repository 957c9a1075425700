"""The built-in plugins of tl, registered like any third-party plugin.

Each module implements hooks of :mod:`tlcore.hookspecs` and imports heavy
libraries (TensorFlow, PyTorch) only inside its hook bodies, so listing plugins is
instant. Framework packs (``keras/``, ``torch/``, and the top removals of
``top_removal/``) declare the framework they serve with ``TL_FRAMEWORK``; the
others are framework-neutral.
"""

BUILTIN_PLUGINS = (
    "tlplugins.datasets.listed",  # a listing in a CSV or JSON Lines file; it and the folder loader never both answer
    "tlplugins.datasets.imagenet_folder",
    "tlplugins.keras.framework",
    "tlplugins.keras.distributed",
    "tlplugins.keras.bases",
    "tlplugins.keras.base_model",
    "tlplugins.top_removal.classifier_head",
    "tlplugins.keras.trainer",
    "tlplugins.keras.saved_model",
    "tlplugins.keras.quantize",
    "tlplugins.keras.tflite",
    "tlplugins.torch.framework",
    "tlplugins.torch.distributed",
    "tlplugins.torch.bases",
    "tlplugins.torch.base_model",
    "tlplugins.top_removal.torch_head",
    "tlplugins.torch.trainer",
    "tlplugins.torch.saving",
    "tlplugins.torch.quantize",
    "tlplugins.imx500.layers",
    "tlplugins.imx500.converter",
    "tlplugins.tracking.mlflow_runs",
    "tlplugins.metrics.top1",
    "tlplugins.metrics.per_class",
    "tlplugins.metrics.top5",
    # The built-ins are trylast, and trylast implementations are asked in registration order: the summary,
    # registered after the other reports, is asked after them (and after installed report plugins that are not
    # trylast) and links what they wrote.
    "tlplugins.reports.tables",
    "tlplugins.reports.figures",
    "tlplugins.reports.tensorboard",
    "tlplugins.reports.summary",
)
