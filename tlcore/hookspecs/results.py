"""The run's results: metrics, reports, and the observers of its end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from tlcore.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.evaluation import Predictions
    from tlcore.health import HealthReport
    from tlcore.report import Reporter
    from tlcore.run import RunResult


@hookspec
def tl_evaluate(predictions: Predictions, dataset: DatasetIndex, config: RunConfig,
                reporter: Reporter) -> dict[str, Any] | None:
    """*Collecting*: every plugin is asked. Compute metrics from the classifier's predictions on the
    validation images; metric plugins never see a model, so every metric works with every
    framework. The core merges the dicts into `results.json` and refuses a metric reported by two
    plugins (block one of them). The built-in `metrics.top1` reports `top_1_accuracy` and
    `num_images`; `metrics.top5` reports `top_5_accuracy` when there are more than 5 classes;
    `metrics.per_class` reports `per_class` (Top-1 accuracy, images, precision, recall and F1 of each
    class).

    - `predictions` (`tlcore.evaluation.Predictions`): `scores` (n x outputs), `label_ids` (the
      true ids), `paths`, `class_names` (by output index), `predicted` (best ids) and `top_k(k)`.
    - `dataset` (`DatasetIndex`): the images and labels.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages.
    - Returns: a JSON-serialisable dict of metrics, or `None`.

    ```python
    @hookimpl
    def tl_evaluate(predictions):
        top3 = predictions.top_k(3)
        hits = (top3 == predictions.label_ids[:, None]).any(axis=1)
        return {"top_3_accuracy": float(hits.mean())}
    ```
    """


@hookspec
def tl_write_reports(predictions: Predictions, metrics: Mapping[str, Any], history: Sequence[Mapping[str, float]],
                     dataset: DatasetIndex, path: Path, config: RunConfig, reporter: Reporter,
                     health: HealthReport | None) -> list[str] | None:
    r"""*Collecting*: every plugin is asked, after evaluation. Write report files about the run (tables,
    pictures, a summary) into `path`, a staging folder: its files are moved into
    `evaluate_result_dir`, beside `results.json`, only when the whole run succeeded (a failed or
    interrupted run leaves the previous reports). Report plugins work over predictions and history,
    so they work for every framework. A file called `summary.*` is named at the end of `tl run`.
    The built-in `reports.tables`, `reports.figures` and `reports.tensorboard` write the confusion
    matrix, misclassified images, history and pictures (see [What a run writes](outputs.md));
    `reports.summary` is asked after them (trylast implementations are asked in registration order)
    and links every file in `path`, yours included, from `summary.html`. A plugin of yours that is not
    `trylast` is asked before it. Only the entries whose names a plugin returns are published, all
    together; tl refuses to replace a file in `evaluate_result_dir` that it did not write (or that was
    changed since), and report files of an earlier run that this run did not write again are removed
    when the new ones are published, unless something in them is not tl's.

    - `predictions` (`tlcore.evaluation.Predictions`): scores, true ids and paths of the validation images.
    - `metrics` (`Mapping[str, Any]`): the merged metrics of `results.json`.
    - `history` (`Sequence[Mapping[str, float]]`): one dict per epoch (`epoch`, `loss`, `acc`, `val_loss`, `val_acc`).
    - `dataset` (`DatasetIndex`): class names and images.
    - `path` (`pathlib.Path`): the staging folder.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages.
    - `health` (`tlcore.health.HealthReport | None`): the data check's findings (`findings`: duplicates
      within and across the splits, likely wrong labels, classes with few images, imbalance; `checked`: what
      was checked), whose `data_health.csv` and `data_health.json` are already in `path`; None when the run
      did not check the data. `reports.summary` shows them in its "Data health" section.
    - Returns: the names of the files and folders written directly in `path`.

    ```python
    @hookimpl
    def tl_write_reports(predictions, path):
        wrong = predictions.predicted != predictions.label_ids
        (path / "wrong.txt").write_text("".join(f"{p}\n" for p, bad in zip(predictions.paths, wrong) if bad))
        return ["wrong.txt"]
    ```
    """


@hookspec
def tl_on_run_end(config: RunConfig, metrics: Mapping[str, Any], result: RunResult, reporter: Reporter) -> None:
    """*Observer*: the run finished and its outputs were written.

    - `config` (`RunConfig`): the configuration.
    - `metrics` (`Mapping[str, Any]`): the merged metrics, as written to `results.json`.
    - `result` (`tlcore.run.RunResult`): `metrics`, `history` (one dict per epoch), `framework`,
      `saved_model_dir`, `results_file`, `plugins` (which plugin answered each step), `seconds`.
    - `reporter` (`Reporter`): for messages.

    ```python
    @hookimpl
    def tl_on_run_end(config, metrics, result):
        notify(f"{config.output_dir}: top-1 {metrics['top_1_accuracy']:.3f} in {result.seconds:.0f} s")
    ```
    """


@hookspec
def tl_on_run_failed(config: RunConfig, error: BaseException, reporter: Reporter) -> None:
    """*Observer*: the run failed or was interrupted (Ctrl-C, SIGTERM, a notebook's stop button) after
    it started; nothing of it was published. Clean up what your plugin started. An exception raised
    here becomes a warning; it never hides the run's own error.

    - `config` (`RunConfig`): the configuration.
    - `error` (`BaseException`): what stopped the run (`KeyboardInterrupt` when interrupted).
    - `reporter` (`Reporter`): for messages.

    ```python
    @hookimpl
    def tl_on_run_failed(config, error):
        (config.output_dir / "history.csv").unlink(missing_ok=True)
    ```
    """
