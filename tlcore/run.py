"""The orchestrator: one transfer-learning run, hook by hook."""

import json
import os
import time
from datetime import datetime, timezone

from tlcore import __version__
from tlcore.calls import call_all, call_first
from tlcore.dataset import DatasetIndex
from tlcore.errors import OutputError, PluginError
from tlcore.outputs import (
    MARKER, StagedDir, check_replaceable, prepare_output_dir, remove_if_empty, signals_deferred, staged_json,
    write_json_atomic,
)
from tlcore.preprocessing import Preprocessing

ANSWER_HOOKS = ("tl_load_dataset", "tl_load_base_model", "tl_remove_top_layer", "tl_train", "tl_save_model")


class RunEvents:
    """Handed to the trainer so that observer plugins hear about epochs."""

    def __init__(self, manager, config):
        self._manager = manager
        self._config = config

    def epoch_start(self, epoch):
        call_all(self._manager, "tl_on_epoch_start", config=self._config, epoch=epoch, epochs=self._config.epochs)

    def epoch_end(self, epoch, logs):
        logs = {name: float(value) for name, value in logs.items()}
        call_all(
            self._manager, "tl_on_epoch_end", config=self._config, epoch=epoch, epochs=self._config.epochs, logs=logs
        )


def _answer(manager, hook_name, **kwargs):
    result, plugin = call_first(manager, hook_name, **kwargs)
    if result is None:
        raise PluginError(f"no plugin answered {hook_name}; is a built-in plugin blocked?")
    return result, plugin


REQUIRED_HOOKS = (*ANSWER_HOOKS, "tl_evaluate")


def run(config, manager, reporter, status=None):
    """Run the whole flow for a validated ``config``; return the metrics written to results.json.

    ``status`` (a dict), if given, gets ``"outputs_written": True`` once saved_model and
    results.json are in place, so a caller interrupted later knows they are complete.
    """
    started = time.monotonic()
    status = {} if status is None else status
    for hook in REQUIRED_HOOKS:
        if not getattr(manager.hook, hook).get_hookimpls():
            raise PluginError(f"no plugin implements {hook}; is a built-in plugin blocked?")
    call_all(manager, "tl_on_run_start", config=config)
    check_replaceable(config.saved_model_dir)
    if config.results_file.exists() and not config.results_file.is_file():
        raise OutputError(f"{config.results_file} exists and is not a file; move it away or choose another "
                          "evaluate_result_dir")
    answered = {}
    dataset, answered["tl_load_dataset"] = _answer(manager, "tl_load_dataset", config=config, reporter=reporter)
    if not isinstance(dataset, DatasetIndex):
        raise PluginError(
            f'plugin "{answered["tl_load_dataset"]}" returned {type(dataset).__name__} from tl_load_dataset; '
            "it must return a tlcore.dataset.DatasetIndex"
        )
    created = prepare_output_dir(config.output_dir, "output_dir")
    try:
        created += prepare_output_dir(config.evaluate_result_dir, "evaluate_result_dir")
        metrics = _train_save_evaluate(manager, config, reporter, dataset, answered, status)
    except BaseException:
        remove_if_empty(created)
        raise
    reporter.info(f"Saved model: {config.saved_model_dir}")
    reporter.info(f"Results: {config.results_file} ({time.monotonic() - started:.1f} s in all)")
    call_all(manager, "tl_on_run_end", config=config, metrics=metrics)
    return metrics


def _train_save_evaluate(manager, config, reporter, dataset, answered, status):
    preprocessing = Preprocessing.from_config(config)
    common = {"config": config, "reporter": reporter}
    model, answered["tl_load_base_model"] = _answer(manager, "tl_load_base_model", **common)
    extractor, answered["tl_remove_top_layer"] = _answer(manager, "tl_remove_top_layer", model=model, **common)
    classifier, answered["tl_train"] = _answer(
        manager, "tl_train", model=extractor, dataset=dataset, preprocessing=preprocessing,
        events=RunEvents(manager, config), **common,
    )
    with StagedDir(config.saved_model_dir) as staged:
        _, answered["tl_save_model"] = _answer(manager, "tl_save_model", model=classifier, path=staged.path, **common)
        metrics = evaluate(manager, classifier, dataset, preprocessing, **common)
        write_json_atomic(staged.path / "labels.json", dict(sorted(dataset.labels.items(), key=lambda kv: kv[1])))
        write_json_atomic(staged.path / "preprocessing.json", preprocessing.to_dict())
        write_json_atomic(staged.path / MARKER, {
            "tl_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "configuration": config.to_dict(),
            "num_outputs": dataset.num_outputs,
            "class_names": dataset.class_names,
            "preprocessing": preprocessing.to_dict(),
            "plugins": answered,
            "skipped_images": [
                {"path": str(path), "reason": reason}
                for split in (dataset.training, dataset.validation) for path, reason in split.skipped
            ],
            "metrics": metrics,
        })
        results = staged_json(config.results_file, metrics)
        try:
            with signals_deferred():
                staged.publish()
                os.replace(results, config.results_file)
                status["outputs_written"] = True
        except OSError as exc:
            raise OutputError(f"cannot write the outputs: {exc}; earlier outputs are unchanged") from None
        finally:
            results.unlink(missing_ok=True)
    return metrics


def evaluate(manager, model, dataset, preprocessing, config, reporter):
    """Merge every evaluator's metrics; a metric reported twice is an error."""
    metrics, owner = {}, {}
    for plugin, result in call_all(
        manager, "tl_evaluate", model=model, dataset=dataset, preprocessing=preprocessing,
        config=config, reporter=reporter,
    ):
        if not isinstance(result, dict):
            raise PluginError(f'plugin "{plugin}" returned {type(result).__name__} from tl_evaluate; it must return a dict')
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise PluginError(f'plugin "{plugin}" returned metrics that are not JSON-serialisable: {exc}') from None
        for name, value in result.items():
            if name in metrics:
                raise PluginError(f'metric "{name}" is reported by both "{owner[name]}" and "{plugin}"; block one of them')
            metrics[name], owner[name] = value, plugin
    if not metrics:
        raise PluginError("no plugin answered tl_evaluate; is the built-in evaluator blocked?")
    return metrics
