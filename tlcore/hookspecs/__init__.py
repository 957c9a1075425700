"""The hooks a ``tl`` plugin can implement.

Hooks are called with keyword arguments; an implementation may accept any subset
of them, so new arguments can be added without breaking existing plugins.

*Answer* hooks (``firstresult``) stop at the first non-None result. Plugins are
asked in pluggy's order: the last registered first, shifted by ``tryfirst`` and
``trylast``. Built-in implementations are ``trylast``, so an installed plugin
answers before them. *Collecting* hooks call every plugin. *Observer* hooks
(``tl_on_*``) call every plugin and ignore return values.

*Framework steps* (loading the base model, top removal, training, saving,
prediction, loading a saved model) are asked only of the plugins that serve the
selected framework (``TL_FRAMEWORK``) and of framework-neutral plugins.

The specifications live in four modules, in the order a run calls the hooks (:data:`SPEC_MODULES`):
:mod:`~tlcore.hookspecs.declarations`, :mod:`~tlcore.hookspecs.training`, :mod:`~tlcore.hookspecs.quantization`
and :mod:`~tlcore.hookspecs.results`; every hook is importable from here. Each hook's docstring (Markdown) is
its section of the hook reference, ``docs/hooks.md``, which :mod:`tlcore.hookdocs` makes from them.
"""

from tlcore.hookspecs import declarations, quantization, results, training
from tlcore.hookspecs.declarations import tl_base_models, tl_config_keys, tl_frameworks
from tlcore.hookspecs.markers import PROJECT_NAME, hookimpl, hookspec
from tlcore.hookspecs.quantization import tl_convert, tl_export_quantized, tl_export_tflite, tl_quantize
from tlcore.hookspecs.results import tl_evaluate, tl_on_run_end, tl_on_run_failed, tl_write_reports
from tlcore.hookspecs.training import (
    tl_check_model, tl_cluster, tl_devices, tl_load_base_model, tl_load_dataset, tl_load_model, tl_on_epoch_end,
    tl_on_epoch_start, tl_on_run_start, tl_predict, tl_remove_top_layer, tl_save_model, tl_train,
)

SPEC_MODULES = (declarations, training, quantization, results)
"""The modules of the specifications, in the order a run calls their hooks (each defines its own in that order)."""

__all__ = [
    "PROJECT_NAME", "SPEC_MODULES", "hookimpl", "hookspec", "tl_base_models", "tl_check_model", "tl_cluster", "tl_config_keys",
    "tl_convert", "tl_devices", "tl_evaluate", "tl_export_quantized", "tl_export_tflite", "tl_frameworks",
    "tl_load_base_model", "tl_load_dataset", "tl_load_model", "tl_on_epoch_end", "tl_on_epoch_start",
    "tl_on_run_end", "tl_on_run_failed", "tl_on_run_start", "tl_predict", "tl_quantize", "tl_remove_top_layer",
    "tl_save_model", "tl_train", "tl_write_reports",
]
