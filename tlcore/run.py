"""The orchestrator: one transfer-learning run, hook by hook, on the selected framework."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from tlcore import __version__
from tlcore.calls import Hooks, describe_exception, exited
from tlcore.dataset import DatasetIndex
from tlcore.distributed import SINGLE, Cluster
from tlcore.errors import OutputError, PluginError, TLError
from tlcore.evaluation import evaluate, evaluate_model, scored
from tlcore.frameworks import RUN_STEPS, Devices
from tlcore.health import HEALTH_CSV, HEALTH_JSON
from tlcore.images import limit_pixels
from tlcore.loader import decoding_ahead
from tlcore.lock import command_line, output_lock
from tlcore.outputs import (
    MARKER, StagedDir, StagedFiles, adopt_earlier, check_owned, check_replaceable, prepare_output_dir,
    publish_together, record_owned, remove_if_empty, write_json_atomic,
)
from tlcore.preprocessing import Preprocessing
from tlcore.quantization import REQUIRED_HOOKS as QUANTIZE_HOOKS
from tlcore.quantization import quantize_locked
from tlcore.registry import open_hooks
from tlcore.training import Checkpoint, RunEvents

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.health import HealthReport
    from tlcore.pluginmanager import PluginManager
    from tlcore.quantization import QuantizationResult
    from tlcore.report import Reporter

ANSWER_HOOKS = ("tl_cluster", "tl_load_dataset", "tl_devices", *RUN_STEPS[:-1], "tl_load_model", "tl_predict", "tl_quantize",
                "tl_export_quantized", "tl_export_tflite", "tl_convert")
"""The first-answer hooks, in the order ``tl plugins list`` shows them."""

REQUIRED_HOOKS = ("tl_load_dataset", *RUN_STEPS, "tl_evaluate")
HEALTH_NAMES = (HEALTH_CSV, HEALTH_JSON)


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced: ``tl run`` prints it, the Python API returns it.

    :param metrics: the merged metrics, as written to ``results.json``.
    :param history: one dict per epoch: ``epoch``, ``loss``, ``acc``, ``val_loss``, ``val_acc``.
    :param framework: the name of the framework that trained the model.
    :param saved_model_dir: ``output_dir/saved_model``.
    :param results_file: ``evaluate_result_dir/results.json``.
    :param plugins: which plugin answered each step (hook name -> plugin name).
    :param seconds: the wall time of the run.
    :param quantization: with ``"quantize": true``, the :class:`tlcore.quantization.QuantizationResult`.
    :param reports: the report files written beside ``results.json`` (confusion matrix, curves, summary ...).
    """

    metrics: Mapping[str, Any]
    history: tuple[Mapping[str, float], ...]
    framework: str
    saved_model_dir: Path
    results_file: Path
    plugins: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    quantization: QuantizationResult | None = None
    """With ``"quantize": true``: what quantizing for the IMX500 produced."""
    reports: tuple[Path, ...] = ()
    health: HealthReport | None = None
    """The data check's :class:`tlcore.health.HealthReport` (``"data_check": true``, the default), else None."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "plugins", MappingProxyType(dict(self.plugins)))

    @property
    def output_dir(self) -> Path:
        """The run's ``output_dir`` (``saved_model`` and, after quantizing, ``imx500`` are in it)."""
        return self.saved_model_dir.parent

    @property
    def evaluate_result_dir(self) -> Path:
        """Where ``results.json`` and the reports are."""
        return self.results_file.parent

    @property
    def summary(self) -> Path | None:
        """The human-readable summary page (``summary.html``), when a reports plugin wrote one."""
        return next((path for path in self.reports if path.name.startswith("summary.")), None)

    def report(self, name: str) -> Path:
        """The report file called ``name`` (e.g. ``"confusion_matrix.png"``).

        :raises KeyError: naming the reports there are, when this run wrote no such file.
        """
        for path in self.reports:
            if path.name == name:
                return path
        raise KeyError(f"{name}: this run wrote no such report; it wrote {', '.join(p.name for p in self.reports)}")


def run(config: RunConfig, manager: PluginManager, reporter: Reporter, *, debug: bool = False,
        resume: bool = False) -> RunResult:
    """Run the whole flow for a validated ``config`` and return its :class:`RunResult`; with ``resume``,
    continue the interrupted run whose checkpoint is in ``output_dir`` (``tl run --resume``).

    Observer plugins hear ``tl_on_run_failed`` when the run fails or is interrupted
    after it started. A ``KeyboardInterrupt`` that arrives after the outputs were
    published carries the result as its ``result`` attribute.
    """
    started = time.monotonic()
    required = list(REQUIRED_HOOKS)
    if config.quantize:
        required += QUANTIZE_HOOKS
    hooks = open_hooks(config, manager, required, debug=debug)
    cluster = join_cluster(hooks, config, reporter)
    try:
        if not cluster.chief:  # the chief writes (and locks) the outputs; this worker trains its part
            result = _run(hooks, config, reporter, started, resume, cluster)[0]
            cluster.gather("written")  # wait for the chief's outputs: the engine may need every worker till then
            reporter.info("The chief (worker 0) has written the outputs; this worker wrote none")
            return result
        with output_lock({"output_dir": config.output_dir, "evaluate_result_dir": config.evaluate_result_dir},
                         command_line(), reporter):
            return _locked_run(hooks, manager, config, reporter, started, debug, resume, cluster)
    finally:
        cluster.close()


def join_cluster(hooks: Hooks, config: RunConfig, reporter: Reporter) -> Cluster:
    """The run's workers: the framework's engine joins them (``tl_cluster``), or the run is alone."""
    cluster, plugin = hooks.first("tl_cluster", config=config, reporter=reporter)
    if cluster is None:
        return SINGLE
    if not isinstance(cluster, Cluster):
        raise PluginError(f'plugin "{plugin}" returned {type(cluster).__name__} from tl_cluster; it must return a '
                          "tlcore.distributed.Cluster or None")
    reporter.info(f"Workers: {cluster.size} ({cluster.engine} at {cluster.where}); this is {cluster.name}"
                  + (", the chief: it writes the outputs" if cluster.chief else "; the chief (worker 0) writes the "
                     "outputs"))
    return cluster


def _locked_run(hooks: Hooks, manager: PluginManager, config: RunConfig, reporter: Reporter, started: float,
                debug: bool, resume: bool, cluster: Cluster = SINGLE) -> RunResult:
    adopt_earlier(config.evaluate_result_dir, config.saved_model_dir / MARKER)
    try:
        hooks.all("tl_on_run_start", config=config, reporter=reporter)  # inside: observers that started hear if another one fails
        result, classifier, dataset = _run(hooks, config, reporter, started, resume, cluster)
        cluster.gather("written")  # the other workers wait for the outputs (and quantize nothing)
        if config.quantize:
            try:
                quantized = quantize_locked(config, manager, reporter, model=classifier, dataset=dataset, debug=debug)
            except KeyboardInterrupt as stop:
                stop.result = result  # type: ignore[attr-defined]  # training's outputs are complete
                raise
            result = replace(result, quantization=quantized, seconds=time.monotonic() - started)
    except BaseException as error:
        _tell_failure(hooks, config, error, reporter)
        raise
    try:
        hooks.all("tl_on_run_end", config=config, metrics=dict(result.metrics), result=result, reporter=reporter)
    except KeyboardInterrupt as stop:
        stop.result = result  # type: ignore[attr-defined]  # the outputs are complete: the caller may say so
        raise
    except TLError as error:
        raise type(error)(f"{error}; the run's outputs were written before it and are complete "
                          f"({config.saved_model_dir}, {config.results_file})") from None
    return result


def _tell_failure(hooks: Hooks, config: RunConfig, error: BaseException, reporter: Reporter) -> None:
    """Call every ``tl_on_run_failed`` observer; their own errors become warnings, never the run's error."""
    for impl in hooks.implementations("tl_on_run_failed"):
        try:
            impl.function(**{name: {"config": config, "error": error, "reporter": reporter}[name]
                             for name in impl.argnames})
        except SystemExit as exc:
            reporter.warning(exited(impl.plugin_name, "tl_on_run_failed", exc))
        except Exception as exc:  # noqa: BLE001 - an observer must not hide why the run stopped
            reporter.warning(f'plugin "{impl.plugin_name}" failed in tl_on_run_failed: {describe_exception(exc)}')


def _run(hooks: Hooks, config: RunConfig, reporter: Reporter, started: float, resume: bool = False,
         cluster: Cluster = SINGLE) -> tuple[RunResult, Any, DatasetIndex]:
    if not cluster.chief:
        return _work(hooks, config, reporter, started, cluster)
    check_replaceable(config.saved_model_dir)
    if config.results_file.exists() and not config.results_file.is_file():
        raise OutputError(f"{config.results_file} exists and is not a file; move it away or choose another "
                          "evaluate_result_dir")
    check_owned(config.evaluate_result_dir, [config.results_file.name, *(HEALTH_NAMES if config.data_check else ())])
    answered: dict[str, str] = {}
    dataset, answered["tl_load_dataset"] = hooks.answer("tl_load_dataset", config=config, reporter=reporter)
    if not isinstance(dataset, DatasetIndex):
        raise PluginError(
            f'plugin "{answered["tl_load_dataset"]}" returned {type(dataset).__name__} from tl_load_dataset; '
            "it must return a tlcore.dataset.DatasetIndex"
        )
    events = RunEvents(hooks, config)
    events.cluster = cluster
    created = prepare_output_dir(config.output_dir, "output_dir")
    try:
        created += prepare_output_dir(config.evaluate_result_dir, "evaluate_result_dir")
        with reporter.activity("Fingerprinting the images for the checkpoint", delay=1.0):  # 300k images: seconds
            events.checkpoint = Checkpoint.open(config, dataset, reporter, resume, restartable=cluster.size > 1)
        metrics, classifier, reports = _train_save_evaluate(hooks, config, reporter, dataset, answered, events)
    except BaseException as error:
        remove_if_empty(created)
        if isinstance(error, KeyboardInterrupt) and events.checkpoint is not None and events.checkpoint.epoch:
            error.resume_epoch = events.checkpoint.epoch  # type: ignore[attr-defined]  # the CLI says so
        raise
    seconds = time.monotonic() - started
    reporter.info(f"Saved model: {config.saved_model_dir}")
    reporter.info(f"Results: {config.results_file} ({seconds:.1f} s in all)")
    summaries = [name for name in reports if name.startswith("summary.")]
    if summaries:
        reporter.info(f"Summary: {config.evaluate_result_dir / summaries[0]}")
    if events.health is not None:
        for line in events.health.warning_lines():
            reporter.warning(line)
    assert hooks.framework is not None
    result = RunResult(metrics=metrics, history=tuple(events.history), framework=hooks.framework.name,
                       saved_model_dir=config.saved_model_dir, results_file=config.results_file, plugins=answered,
                       seconds=seconds, reports=tuple(config.evaluate_result_dir / name for name in reports),
                       health=events.health)
    return result, classifier, dataset


def _work(hooks: Hooks, config: RunConfig, reporter: Reporter, started: float,
          cluster: Cluster) -> tuple[RunResult, Any, DatasetIndex]:
    """A worker other than the chief: the same steps up to the trained model, writing nothing in the outputs."""
    answered: dict[str, str] = {}
    dataset, answered["tl_load_dataset"] = hooks.answer("tl_load_dataset", config=config, reporter=reporter)
    events = RunEvents(hooks, config)
    events.cluster = cluster
    config, _, classifier = _trained(hooks, config, reporter, dataset, answered, events)
    seconds = time.monotonic() - started
    reporter.info(f"{cluster.name.capitalize()}: training done in {seconds:.1f} s; waiting for the chief (worker 0) "
                  f"to save, evaluate and write {config.output_dir}")
    assert hooks.framework is not None
    result = RunResult(metrics={}, history=tuple(events.history), framework=hooks.framework.name,
                       saved_model_dir=config.saved_model_dir, results_file=config.results_file, plugins=answered,
                       seconds=seconds)
    return result, classifier, dataset


def on_devices(hooks: Hooks, config: RunConfig, reporter: Reporter) -> RunConfig:
    """Say which devices the framework computes on, and resolve ``"mixed_precision": "auto"`` for them."""
    devices, plugin = hooks.first("tl_devices", config=config)
    if devices is None:
        return replace(config, mixed_precision=config.mixed_precision is True)
    if not isinstance(devices, Devices):
        raise PluginError(f'plugin "{plugin}" returned {type(devices).__name__} from tl_devices; it must return a '
                          "tlcore.frameworks.Devices")
    mixed = devices.mixed_precision(config.mixed_precision)
    reporter.info(devices.describe(mixed))
    return replace(config, mixed_precision=mixed)


def _trained(hooks: Hooks, config: RunConfig, reporter: Reporter, dataset: DatasetIndex, answered: dict[str, str],
             events: RunEvents) -> tuple[RunConfig, Preprocessing, Any]:
    """The devices, the base model, its feature extractor, checked, and the trained classifier."""
    preprocessing = Preprocessing.from_config(config, hooks.framework, hooks.base)
    limit_pixels(config.max_image_pixels)
    cluster = events.cluster
    first_pass = (path for split in (dataset.training, dataset.validation)  # the order features are computed in
                  for path in cluster.share(split.paths))
    with decoding_ahead(first_pass, preprocessing.size):  # while the framework imports and builds the base
        assert hooks.framework is not None
        hooks.framework.start(reporter)
        config = on_devices(hooks, config, reporter)
        common: dict[str, Any] = {"config": config, "reporter": reporter}
        model, answered["tl_load_base_model"] = hooks.answer("tl_load_base_model", base=hooks.base, **common)
        extractor, answered["tl_remove_top_layer"] = hooks.answer("tl_remove_top_layer", model=model, **common)
        hooks.all("tl_check_model", model=extractor, base=hooks.base, **common)
        assert hooks.framework is not None
        if "head_search" not in hooks.framework.keys:  # its head is not the softmax layer tl's search trains
            common["config"] = replace(config, head_search=False)
        classifier, answered["tl_train"] = hooks.answer(
            "tl_train", model=extractor, dataset=dataset, preprocessing=preprocessing, events=events, **common,
        )
    return config, preprocessing, classifier


def _train_save_evaluate(hooks: Hooks, config: RunConfig, reporter: Reporter, dataset: DatasetIndex,
                         answered: dict[str, str], events: RunEvents) -> tuple[dict[str, Any], Any, list[str]]:
    config, preprocessing, classifier = _trained(hooks, config, reporter, dataset, answered, events)
    common: dict[str, Any] = {"config": config, "reporter": reporter}
    with StagedDir(config.saved_model_dir) as staged, StagedFiles(config.evaluate_result_dir) as reports:
        _, answered["tl_save_model"] = hooks.answer("tl_save_model", model=classifier, path=staged.path, **common)
        if events.validation_scores is not None and events.validation_scores[1] is not None:
            rows, scores = events.validation_scores  # the trainer scored the features it had: no second pass
            predictions = scored(scores, rows, dataset.validation, dataset)
            metrics = evaluate(hooks, predictions, dataset, config, reporter)
        else:
            metrics, predictions = evaluate_model(hooks, classifier, dataset, preprocessing, config, reporter,
                                                  answered=answered)
        if events.early_stopping is not None:
            metrics["early_stopping"] = events.early_stopping
        if events.head_search is not None:
            metrics["head_search"] = events.head_search.to_dict()
        health = events.health
        checked = health.write(reports.path) if health is not None else []  # beside the reports, which link it
        written = found_reports(reports.path, [*checked, *(str(name) for _, names in hooks.all(
            "tl_write_reports", predictions=predictions, metrics=metrics, history=events.history, dataset=dataset,
            path=reports.path, config=config, reporter=reporter, health=health) for name in names)], reporter)
        write_json_atomic(staged.path / "labels.json", dict(sorted(dataset.labels.items(), key=lambda kv: kv[1])))
        write_json_atomic(staged.path / "preprocessing.json", preprocessing.to_dict())
        assert hooks.framework is not None
        write_json_atomic(staged.path / MARKER, {
            "tl_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "framework": hooks.framework.name,
            "model_format": hooks.framework.model_format,
            "configuration": config.to_dict(),
            "num_outputs": dataset.num_outputs,
            "class_names": dataset.class_names,
            "preprocessing": preprocessing.to_dict(),
            "plugins": answered,
            "skipped_images": [
                {"path": str(path), "reason": reason}
                for split in (dataset.training, dataset.validation) for path, reason in split.skipped
            ],
            "history": events.history,
            "validation_fingerprint": dataset.validation.fingerprint(),
            "reports": written,
            "metrics": metrics,
        })
        write_json_atomic(reports.path / config.results_file.name, metrics)  # published with the reports, as one set
        for path in reports.check():
            entry = path.relative_to(config.evaluate_result_dir).parts[0]
            reporter.warning(f"{path} was not written by tl: {entry}, which an earlier run wrote, is left as it is")
        publish_together(None, metrics, [staged.publish, reports.publish], "the outputs",
                         after=[events.checkpoint.remove] if events.checkpoint is not None else [])  # nothing to resume
    return metrics, classifier, written


def found_reports(folder: Path, listed: list[str], reporter: Reporter) -> list[str]:
    """The entries of ``folder`` that report plugins wrote and named (a name inside a folder names that folder); a
    name returned without its file, and an entry written without its name, are warned about and not published (so
    tl never records, and later removes, a file that is not its own)."""
    found = set()
    for name in sorted(set(listed)):
        top = name.split("/", 1)[0]
        if top not in (".", "..", "") and os.path.lexists(folder / top) and os.path.lexists(folder / name):
            found.add(top)
        else:
            reporter.warning(f'a report plugin returned "{name}" but wrote no such file; it is not published')
    for entry in sorted(folder.iterdir()):
        if entry.name not in found:
            reporter.warning(f'a report plugin wrote "{entry.name}" without returning its name; it is not published')
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return sorted(found)


def check(config: RunConfig, manager: PluginManager, reporter: Reporter, *, debug: bool = False) -> HealthReport:
    """``tl check``: the data check alone. The base computes the images' features (reusing or filling the feature
    cache), the head search and out-of-fold heads run on them, and ``data_health.csv`` and ``data_health.json``
    are written to ``evaluate_result_dir``; no model is trained or saved, and the dataset is never changed."""
    hooks = open_hooks(config, manager, ("tl_load_dataset", *RUN_STEPS[:3]), debug=debug)
    config = replace(config, data_check=True)
    with output_lock({"output_dir": config.output_dir, "evaluate_result_dir": config.evaluate_result_dir},
                     command_line(), reporter):
        answered: dict[str, str] = {}
        dataset, answered["tl_load_dataset"] = hooks.answer("tl_load_dataset", config=config, reporter=reporter)
        events = RunEvents(hooks, config)
        events.check_only = True
        adopt_earlier(config.evaluate_result_dir, config.saved_model_dir / MARKER)
        check_owned(config.evaluate_result_dir, HEALTH_NAMES)
        created = prepare_output_dir(config.output_dir, "output_dir")
        try:
            created += prepare_output_dir(config.evaluate_result_dir, "evaluate_result_dir")
            _trained(hooks, config, reporter, dataset, answered, events)
        except BaseException:
            remove_if_empty(created)
            raise
        health: HealthReport = events.health
        names = health.write(config.evaluate_result_dir)
        record_owned(config.evaluate_result_dir, names)
    lines = health.warning_lines()
    for line in lines:
        reporter.warning(line)
    reporter.info(f"Data check: {len(health.findings)} finding{'s' if len(health.findings) != 1 else ''}"
                  + ("" if lines else ", nothing to warn about")
                  + f"; {', '.join(str(config.evaluate_result_dir / name) for name in names)}")
    return health
