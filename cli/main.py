"""``tl``: transfer-learn an image classifier from a configuration file.

Each command imports the parts of :mod:`tlcore` it runs (the Python API) inside its function, so that
``tl --help`` and ``tl plugins list`` answer in a fraction of a second; frameworks load only when a run needs one.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import click

from tlcore import __version__

from tlcli.config import config
from tlcli.guard import guarded
from tlcli.init import init
from tlcli.models import models
from tlcli.plugins import plugin_option, plugins
from tlcli.predict import predict


def _quiet_shutdown() -> None:
    """After the command has ended, silence finalizers that fail while the interpreter is torn down:
    TensorFlow's traced functions (held by MCT) print "Exception ignored in AtomicFunction.__del__"."""
    gc.collect()
    sys.unraisablehook = lambda unraisable: None


atexit.register(_quiet_shutdown)

HEAVY = ("tensorflow", "torch")
"""Frameworks whose teardown at interpreter exit takes about a second (TensorFlow's runtime, its thread pools)."""


def entry() -> None:
    """The ``tl`` command (and ``python -m tlcli``): :func:`main`, and then, when a framework was loaded, the
    process ends at once. Every output is written, flushed and closed by then; what is left to tear down
    is the framework's runtime, about a second of a short run's wall time."""
    code: str | int | None
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code
    if not any(name in sys.modules for name in HEAVY):
        sys.exit(code)

    if isinstance(code, str):  # sys.exit("message"): the interpreter would print it and exit with 1
        print(code, file=sys.stderr)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="tl")
def main() -> None:
    """Transfer-learn image classifiers: train a new head on a base model (Keras or PyTorch).

    Start with `tl run` (it reads ./configuration.json); see what is installed with
    `tl plugins list`.
    """


CONFIGURATION_ARGUMENT = click.argument("configuration", metavar="[CONFIGURATION.json]", required=False,
                                        default="configuration.json")


def configuration_path(configuration: str) -> Path:
    """The configuration file to use; without an argument, ./configuration.json, as the SDK keeps it."""
    from tlcore.errors import ConfigError

    path = Path(configuration)
    if configuration == "configuration.json" and not path.exists():
        raise ConfigError(f"no configuration.json in {Path.cwd()}; give the path of your configuration, "
                          "e.g. tl run path/to/configuration.json")
    return path


block_option = click.option("--block", "blocked", multiple=True, metavar="PLUGIN",
                            help="Do not load this plugin for this run (repeatable); see `tl plugins list`.")
debug_option = click.option("--debug", is_flag=True, help="Show full tracebacks and the framework's own log messages.")
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Use this value for a configuration key, for this run only (repeatable; checked like "
                               "the file). The value is read as JSON (5, null, true, [\"flip\"]), else as text; a "
                               "text key takes it as typed (tpc_version=4.0). Relative paths start at the current "
                               "folder, not the configuration's.")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    from tlcore.config import parse_override

    return dict(parse_override(item) for item in items)


@main.command()
@CONFIGURATION_ARGUMENT
@set_option
@block_option
@plugin_option
@click.option("--resume", is_flag=True,
              help="Continue the run that was interrupted in this output_dir from its last finished epoch.")
@debug_option
def run(configuration: str, overrides: Sequence[str], blocked: Sequence[str], extra: Sequence[str], resume: bool,
        debug: bool) -> None:
    """Train, save and evaluate as CONFIGURATION.json says (default: ./configuration.json).

    Writes output_dir/saved_model (the framework's model format, with labels.json
    and preprocessing.json beside it) and evaluate_result_dir/results.json. Paths
    in the configuration are relative to its folder. After every epoch the run's
    state is saved in output_dir/.tl-checkpoint/ (removed when the run ends), so an
    interrupted run continues with --resume.
    """
    from tlcore.api import train

    with guarded(debug, "saved_model and results.json"):
        train(configuration_path(configuration), plugins=extra, block=blocked, resume=resume, debug=debug,
              **parse_overrides(overrides))


@main.command()
@CONFIGURATION_ARGUMENT
@set_option
@block_option
@plugin_option
@debug_option
def quantize(configuration: str, overrides: Sequence[str], blocked: Sequence[str], extra: Sequence[str],
             debug: bool) -> None:
    """Quantize the model `tl run` trained for CONFIGURATION.json for the IMX500.

    Calibrates on training images (quantization_images), evaluates the quantized
    model on the validation images, and, when Sony's converter is installed, makes
    the IMX500 package. Writes output_dir/imx500 and adds the quantized figures to
    results.json. The configuration of the AITRIOS SDK's quantize notebook works too
    (it writes model.tflite, model_quantized.tflite and results.json as the notebook did).
    """
    from tlcore.api import quantize as quantize_model
    from tlcore.errors import ConfigError
    from tlcore.sdk_quantize import is_sdk_form

    with guarded(debug, "output_dir/imx500 and results.json"):
        path = configuration_path(configuration)
        if is_sdk_form(path) and overrides:
            raise ConfigError(f"{path.name} is the SDK quantize notebook's configuration; --set works with tl's "
                              "own configuration: edit the file instead")
        quantize_model(path, plugins=extra, block=blocked, debug=debug, **parse_overrides(overrides))


@main.command()
@CONFIGURATION_ARGUMENT
@set_option
@block_option
@plugin_option
@debug_option
def check(configuration: str, overrides: Sequence[str], blocked: Sequence[str], extra: Sequence[str],
          debug: bool) -> None:
    """Check the dataset of CONFIGURATION.json, without training.

    Looks, on the base model's features of the images, for the same picture twice
    (in training and validation, within a split, or under two labels), training
    images that are likely labelled wrong, classes with too few images and
    imbalance. Writes data_health.csv and data_health.json to evaluate_result_dir;
    the dataset is never changed. Exits 0 when it only has findings.
    """
    from tlcore.api import check as check_dataset

    with guarded(debug, "data_health.csv and data_health.json"):
        check_dataset(configuration_path(configuration), plugins=extra, block=blocked, debug=debug,
                      **parse_overrides(overrides))


main.add_command(plugins)
main.add_command(predict)
main.add_command(init)
main.add_command(config)
main.add_command(models)
