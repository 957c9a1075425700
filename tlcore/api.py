"""tl in Python: the same runs as the command line, for scripts and notebooks.

::

    import tlcore

    result = tlcore.train("configuration.json", epochs=5)      # keys as keyword arguments, checked like the file
    result.metrics["top_1_accuracy"], result.history[-1], result.saved_model_dir
    tlcore.predict(result.saved_model_dir.parent, ["photo.jpg"], top_k=3)
    tlcore.quantize("configuration.json")                       # for the IMX500 (imx500 extra)
    tlcore.list_plugins()["frameworks"]

Every call builds its plugins afresh (the built-ins, the installed ones, and
``plugins`` given for this call only), so a second call in the same notebook
kernel starts clean. Errors are :class:`tlcore.errors.TLError` with the same one-line
messages as the command line; Ctrl-C (a notebook's stop button) raises
``KeyboardInterrupt`` and leaves earlier outputs as they were. Importing
:mod:`tlcore` imports no framework: TensorFlow or PyTorch load when a run needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from tlcore import __version__
from tlcore.config import read_selection
from tlcore.errors import ConfigError
from tlcore.listing import describe
from tlcore.pluginmanager import DISABLE_ENV, installed_plugins_disabled, make_plugin_manager
from tlcore.prediction import predict as predict_images
from tlcore.prepare import load_plugins, prepare
from tlcore.quantization import quantize as quantize_model
from tlcore.report import Reporter
from tlcore.run import check as check_flow
from tlcore.run import run
from tlcore.sdk_quantize import is_sdk_form, quantize_sdk

if TYPE_CHECKING:
    from tlcore.health import HealthReport
    from tlcore.prediction import Prediction
    from tlcore.quantization import QuantizationResult
    from tlcore.run import RunResult


def _header(prepared: Any, reporter: Any) -> None:
    """Like pytest's header: the version, the configuration, the framework, the plugins that are not the built-ins
    and the blocked ones; then any warnings about them."""
    config, manager = prepared.config, prepared.manager
    reporter.info(f"tl {__version__}: {config.config_file} (framework {prepared.framework.name})")
    added = [info for info in manager.describe() if not info.builtin and not info.blocked]
    if added:
        reporter.info("Plugins: " + ", ".join(
            f"{info.name} ({info.distribution} {info.version})" if info.distribution else info.name for info in added
        ))
    if manager.blocked_names:
        reporter.info("Blocked: " + ", ".join(sorted(manager.blocked_names)))
    if installed_plugins_disabled():
        reporter.info(f"Installed plugins are disabled ({DISABLE_ENV} is set)")
    for note in prepared.notes:
        reporter.warning(note)


def train(config: str | Path | Mapping[str, Any], *, plugins: Sequence[Any] = (), block: Sequence[str] = (),
          resume: bool = False, debug: bool = False, **overrides: Any) -> RunResult:
    """Train, save and evaluate as ``config`` says, like ``tl run``, and return the :class:`RunResult`.

    :param config: configuration.json's path, or the configuration as a dict (its relative paths start at
        the current folder).
    :param plugins: plugin objects, classes, modules or module names for this call only (e.g. a class defined in a
        cell).
    :param block: names of plugins not to use.
    :param resume: continue the interrupted run whose checkpoint is in ``output_dir`` (``tl run --resume``).
    :param debug: show the frameworks' own log messages.
    :param overrides: configuration keys for this call (``epochs=5``), checked like the file's.
    """
    prepared = prepare(config, None, block, overrides=overrides, plugins=plugins)
    reporter = Reporter(debug=debug)
    _header(prepared, reporter)
    return run(prepared.config, prepared.manager, reporter, debug=debug, resume=resume)


def quantize(config: str | Path | Mapping[str, Any], *, plugins: Sequence[Any] = (), block: Sequence[str] = (),
             debug: bool = False, **overrides: Any) -> QuantizationResult:
    """Quantize the model ``train`` saved for ``config`` for the IMX500, like ``tl quantize``; a path to
    the AITRIOS SDK quantize notebook's configuration works too."""
    reporter = Reporter(debug=debug)
    if not isinstance(config, Mapping) and is_sdk_form(config):
        if overrides:
            raise ConfigError("keyword arguments work with tl's own configuration, not the SDK quantize notebook's")
        manager, notes = load_plugins(None, block, read_selection(config)[0], (), plugins)
        reporter.info(f"tl {__version__}: {Path(config).absolute()} (the SDK's quantize configuration, framework keras)")
        for note in notes:
            reporter.warning(note)
        return quantize_sdk(config, manager, reporter, debug=debug)
    prepared = prepare(config, None, block, overrides=overrides, plugins=plugins)
    _header(prepared, reporter)
    return quantize_model(prepared.config, prepared.manager, reporter, debug=debug)


def check(config: str | Path | Mapping[str, Any], *, plugins: Sequence[Any] = (), block: Sequence[str] = (),
          debug: bool = False, **overrides: Any) -> HealthReport:
    """Check the dataset of ``config`` without training, like ``tl check``: the same picture twice, likely wrong
    labels, too few images and imbalance, on the base model's features. Writes ``data_health.csv`` and
    ``data_health.json`` to ``evaluate_result_dir`` and returns the :class:`tlcore.health.HealthReport`; the
    arguments are :func:`train`'s (but ``resume``)."""
    prepared = prepare(config, None, block, overrides=overrides, plugins=plugins)
    reporter = Reporter(debug=debug)
    _header(prepared, reporter)
    return check_flow(prepared.config, prepared.manager, reporter, debug=debug)


def predict(model_dir: str | Path, images: str | Path | Iterable[str | Path], top_k: int = 5, *,
            quantized: bool = False, plugins: Sequence[Any] = ()) -> list[Prediction]:
    """The ``top_k`` labels, with scores, of each image (files or folders), like ``tl predict``.

    :param model_dir: ``output_dir/saved_model``, ``output_dir/imx500``, or the ``output_dir`` holding them.
    :param quantized: with an ``output_dir``, use its quantized model.
    :returns: one :class:`tlcore.prediction.Prediction` (``path``, ``predictions``: ``(label, score)`` best
        first) per image that could be decoded, in the order given.
    """
    images = [images] if isinstance(images, (str, Path)) else list(images)
    return predict_images(model_dir, images, top_k, quantized=quantized, manager=make_plugin_manager(objects=plugins))


def list_models(framework: str | None = None, *, plugins: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """What ``tl models --json`` prints: every named base model (or ``framework``'s), with its parameters, feature
    size, input sizes, ImageNet weights (available, cached) and IMX500 status as tl measured it (or None)."""
    from tlcore.base_models import list_bases

    return list_bases(make_plugin_manager(objects=plugins), framework)


def list_plugins(*, plugins: Sequence[Any] = ()) -> dict[str, Any]:
    """What ``tl plugins list --json`` prints: ``plugins``, ``frameworks`` (with their steps), ``call_order``."""
    return describe(make_plugin_manager(objects=plugins))
