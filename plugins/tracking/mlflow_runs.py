"""MLflow tracking: every ``tl run`` recorded as an MLflow run, to compare runs in MLflow's UI.

On with ``"mlflow": true``, or with ``MLFLOW_TRACKING_URI`` set (the convention MLflow users expect;
``"mlflow": false`` wins over it). A run records the resolved configuration as parameters, every epoch's metrics
with their step, the final metrics (float, quantized after ``"quantize": true``, per class), tags for the
framework, base model and tl version, and as artifacts ``results.json``, the reports, ``tl_run.json`` and the
saved model folder (``"mlflow_log_model": false`` leaves it out). Without ``MLFLOW_TRACKING_URI`` the store is
``mlflow.db`` (SQLite) with artifacts in ``mlartifacts/``, both in the configuration's folder. A run that fails
is marked FAILED, an interrupted one KILLED. An unreachable tracking server is a one-line warning at start and
the training runs anyway (``"mlflow_required": true`` makes it a one-line error before any work).

Needs the ``mlflow`` extra: ``pip install -e '.[mlflow]'``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from tlcore import __version__
from tlcore.calls import describe_exception
from tlcore.errors import ConfigError
from tlcore.hookspecs import hookimpl
from tlcore.keys import ConfigKey

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.report import Reporter
    from tlcore.run import RunResult

URI_VARIABLE = "MLFLOW_TRACKING_URI"
STORE = "mlflow.db"
ARTIFACTS = "mlartifacts"
INSTALL = "pip install -e '.[mlflow]'"
MAX_PARAM = 500
"""MLflow keeps parameter values of up to 6000 characters; longer values (a class weight table) are shortened."""

_active: dict[str, Any] = {}
"""The MLflow run of the tl run in progress in this process: ``client`` and ``run_id``."""


def _switch(value: Any, base_dir: Path) -> Any:
    if value in ("auto", True, False):
        return value
    raise ValueError(f'is {json.dumps(value)}; use true, false or "auto" (on when {URI_VARIABLE} is set)')


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [
        ConfigKey("mlflow", "any", default="auto", affects_model=False, convert=_switch,
                  help=f"record the run in MLflow: true, false, or auto (when {URI_VARIABLE} is set); without it the "
                       "store is mlflow.db and mlartifacts/ in the configuration's folder (the mlflow extra)"),
        ConfigKey("mlflow_experiment", "string", default="tl", affects_model=False,
                  help="the MLflow experiment the runs are recorded in"),
        ConfigKey("mlflow_log_model", "boolean", default=True, affects_model=False,
                  help="also store the saved model folder as an MLflow artifact"),
        ConfigKey("mlflow_required", "boolean", default=False, affects_model=False,
                  help="stop before any work when MLflow cannot record the run (else a warning, and the run goes on)"),
    ]


def wanted(config: RunConfig) -> bool:
    chosen = config.options.get("mlflow", "auto")
    return (bool(os.environ.get(URI_VARIABLE)) if chosen == "auto" else chosen is True) and chief()


def chief() -> bool:
    """Whether this process is the one that writes a run's outputs: the only one, or worker 0 of several (torchrun's
    ``RANK``, or ``TF_CONFIG``'s task); the others record nothing, so that a run of several workers is one run."""
    rank = os.environ.get("RANK")
    if rank is not None:
        return rank.strip() == "0"
    try:
        task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    except ValueError:
        return True
    return int(task.get("index", 0)) == 0 if isinstance(task, dict) else True


def store_uri(config: RunConfig) -> tuple[str, Path | None]:
    """The tracking URI, and the artifact folder tl chooses (None when ``MLFLOW_TRACKING_URI`` says where)."""
    uri = os.environ.get(URI_VARIABLE)
    if uri:
        return uri, None
    folder = config.config_file.parent.resolve()
    for key in ("output_dir", "evaluate_result_dir"):
        output = getattr(config, key).resolve()
        if folder.is_relative_to(output):
            raise ConfigError(f'MLflow\'s store would be {folder / STORE}, inside "{key}" ({output}), which runs '
                              f"replace; set {URI_VARIABLE} (e.g. sqlite:///path/to/mlflow.db) or choose an "
                              f'"{key}" outside the configuration\'s folder')
    return f"sqlite:///{folder / STORE}", folder / ARTIFACTS


def parameters(config: RunConfig) -> dict[str, str]:
    """The resolved configuration, as MLflow parameters (text)."""
    values: dict[str, Any] = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)
                              if field.name not in ("options", "given_keys", "set_keys", "set_label", "ignored_keys",
                                                    "neutral_keys")}
    values.update(config.options)
    shown = {}
    for name, value in sorted(values.items()):
        text = json.dumps(value, default=str) if not isinstance(value, (str, Path)) else str(value)
        shown[name] = text if len(text) <= MAX_PARAM else text[:MAX_PARAM - 3] + "..."
    return shown


def metric_name(name: str) -> str:
    """``name`` as MLflow accepts it (letters, digits, ``_ - . / `` and spaces)."""
    return re.sub(r"[^\w\-. /]", "_", name)


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of ``results.json``: top-level ones, and per class as ``per_class/<class>/<metric>``."""
    flat: dict[str, float] = {}

    def add(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        flat[metric_name(name)] = float(value)

    for key, value in metrics.items():
        if key in ("per_class", "quantized_per_class") and isinstance(value, Mapping):
            for label, figures in value.items():
                for metric, number in (figures.items() if isinstance(figures, Mapping) else ()):
                    add(f"{key}/{label}/{metric}", number)
        else:
            add(key, value)
    return flat


@hookimpl
def tl_on_run_start(config: RunConfig, reporter: Reporter) -> None:
    _active.clear()
    if not wanted(config):
        return
    required = config.options.get("mlflow_required", False)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        if config.options.get("mlflow") is True or required:
            raise ConfigError(f'"mlflow" is true, but MLflow is not installed; {INSTALL}') from None
        reporter.info(f"Note: {URI_VARIABLE} is set, but MLflow is not installed, so this run is not recorded "
                      f'({INSTALL}, or set "mlflow": false)')
        return
    uri, artifacts = store_uri(config)
    for name in ("mlflow", "alembic"):  # MLflow says at INFO that it creates its tables: not the user's concern
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # an unreachable server: said at once
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        client = MlflowClient(tracking_uri=uri)
        name = config.options.get("mlflow_experiment", "tl")
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(
            name, artifact_location=artifacts.as_uri() if artifacts is not None else None)
        run = client.create_run(experiment_id, run_name=config.output_dir.name, tags={
            "tl.framework": config.framework, "tl.base_model": str(config.options.get("base_model", "")),
            "tl.version": __version__, "tl.configuration": str(config.config_file),
            "tl.output_dir": str(config.output_dir)})
        client.log_batch(run.info.run_id, params=[_param(key, value) for key, value in parameters(config).items()])
    except Exception as exc:  # a server down, a store that cannot be written: the training goes on
        message = f"MLflow cannot record this run at {uri} ({describe_exception(exc)})"
        if required:
            raise ConfigError(f'{message}; start the tracking server, or set "mlflow_required": false to train '
                              "without recording") from None
        reporter.warning(f"{message}; the run goes on without it")
        return
    _active.update(client=client, run_id=run.info.run_id, uri=uri)
    reporter.info(f"MLflow: recording run {run.info.run_id} in experiment \"{name}\" at {uri}")


def _param(key: str, value: str) -> Any:
    from mlflow.entities import Param

    return Param(key, value)


def _call(reporter: Reporter | None, what: str, action: Any) -> None:
    """Call ``action`` on the active MLflow run; a failure is a warning (the run's own outputs are unaffected)."""
    if not _active:
        return
    try:
        action(_active["client"], _active["run_id"])
    except Exception as exc:  # noqa: BLE001 - MLflow's trouble must not fail a run
        if reporter is not None:
            reporter.warning(f"MLflow could not {what} ({describe_exception(exc)})")


@hookimpl
def tl_on_epoch_end(config: RunConfig, epoch: int, logs: Mapping[str, float]) -> None:
    if not _active:
        return
    import time

    from mlflow.entities import Metric

    def log(client: Any, run_id: str) -> None:
        stamp = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(metric_name(key), float(value), stamp, epoch)
                                          for key, value in logs.items()
                                          if isinstance(value, (int, float)) and math.isfinite(value)])

    _call(None, "log the epoch's metrics", log)


@hookimpl
def tl_on_run_end(config: RunConfig, metrics: Mapping[str, Any], result: RunResult, reporter: Reporter) -> None:
    if not _active:
        return
    import time

    from mlflow.entities import Metric

    def log(client: Any, run_id: str) -> None:
        stamp = int(time.time() * 1000)
        numbers = final_metrics(metrics)
        client.log_batch(run_id, metrics=[Metric(key, value, stamp, 0) for key, value in numbers.items()])
        client.log_artifact(run_id, str(result.results_file))
        for report in result.reports:
            if Path(report).is_file():
                client.log_artifact(run_id, str(report), "reports")
            elif Path(report).is_dir():
                client.log_artifacts(run_id, str(report), f"reports/{Path(report).name}")
        record = result.saved_model_dir / "tl_run.json"
        if record.is_file():
            client.log_artifact(run_id, str(record))
        if config.options.get("mlflow_log_model", True):
            client.log_artifacts(run_id, str(result.saved_model_dir), "saved_model")

    _call(reporter, "record the run's results", log)
    _call(reporter, "mark the run FINISHED", lambda client, run_id: client.set_terminated(run_id, "FINISHED"))
    reporter.info(f"MLflow: run {_active['run_id']} recorded at {_active['uri']}")
    _active.clear()


@hookimpl
def tl_on_run_failed(config: RunConfig, error: BaseException, reporter: Reporter) -> None:
    status = "FAILED" if isinstance(error, Exception) else "KILLED"  # KeyboardInterrupt, SystemExit: stopped
    _call(reporter, f"mark the run {status}", lambda client, run_id: client.set_terminated(run_id, status))
    _active.clear()
