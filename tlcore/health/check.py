"""The whole data check: on features already computed (:func:`check_health`), and on a run's dataset and cached
features with out-of-fold heads trained as the head is (:func:`check_dataset`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from tlcore.head_search import SEARCH_IMAGES, Settings, cross_validate, fold_count, stratified_folds, stratified_sample
from tlcore.health.duplicates import DUPLICATE_THRESHOLD, content_digests, find_duplicates
from tlcore.health.labels import MAX_LABEL_FINDINGS, class_findings, find_label_issues
from tlcore.health.report import SPLITS, HealthReport

if TYPE_CHECKING:
    import numpy as np

    from tlcore.dataset import DatasetIndex
    from tlcore.report import Reporter

def check_health(features: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], paths: Mapping[str, Sequence[str]],
          class_names: Sequence[str | None], digests: Mapping[str, Sequence[str]] | None = None,
          oof_scores: np.ndarray | None = None, threshold: float = DUPLICATE_THRESHOLD,
          max_label_findings: int = MAX_LABEL_FINDINGS) -> HealthReport:
    """Every check at once, as a :class:`HealthReport`: duplicates of ``features``, likely wrong labels of the
    training images when their out-of-fold ``oof_scores`` are given, and the class counts from ``labels``.
    ``checked`` records the images per split, the pairs verified, the settings and the seconds taken."""
    import numpy as np

    began = time.perf_counter()
    stats: dict[str, Any] = {}
    findings = find_duplicates(features, labels, paths, digests, class_names, threshold, stats=stats)
    if oof_scores is not None:
        findings += find_label_issues(oof_scores, labels["training"], paths["training"], class_names,
                                      max_label_findings)
    counts = {}
    for split in SPLITS:
        ids, numbers = np.unique(np.asarray(labels.get(split, []), dtype=np.int64), return_counts=True)
        found = dict(zip(ids.tolist(), numbers.tolist(), strict=True))
        counts[split] = {name: found.get(label, 0) for label, name in enumerate(class_names) if name is not None}
    findings += class_findings(counts["training"], counts["validation"])
    checked = {"images": stats["images"], "pairs_verified": stats["pairs_verified"],
               "identical_groups": stats["identical_groups"], "duplicate_threshold": threshold,
               "lsh": {"bits": stats.get("bits"), "tables": stats.get("tables")},
               "label_check": oof_scores is not None, "seconds": round(time.perf_counter() - began, 3)}
    return HealthReport(findings, checked)


def check_dataset(sets: Mapping[str, Any], dataset: DatasetIndex, settings: Settings, *, epochs: int,
                  batch_size: int, dropout: float, seed: int, class_weights: np.ndarray | None,
                  reporter: Reporter, near_duplicates: bool = True) -> HealthReport:
    """The data check of a run: duplicates among the cached features of both splits (:class:`FeatureSet` s, by
    split name), likely wrong labels from out-of-fold heads trained with ``settings`` on the training features
    (those of a stratified sample on a large dataset, :data:`tlcore.head_search.SEARCH_IMAGES`), and the
    classes' counts; without ``near_duplicates`` (features that do not tell photos apart), only identical files
    are duplicates. Nothing of the dataset is changed."""
    import numpy as np

    with reporter.activity("Checking the data (duplicates, labels, classes)", delay=2.0):
        training = sets["training"]
        labels = np.asarray(training.labels)
        rows = np.asarray(training.rows)
        if len(rows) > SEARCH_IMAGES:
            rows = rows[stratified_sample(labels[rows], SEARCH_IMAGES, seed)]
        oof = np.full((len(labels), dataset.num_outputs), np.nan, dtype=np.float32)
        if len(np.unique(labels[rows])) > 1:
            folds = fold_count(labels[rows])
            measured = cross_validate(np.asarray(training.features[rows]), labels[rows], dataset.num_outputs,
                                      [settings], stratified_folds(labels[rows], folds, seed), epochs=epochs,
                                      batch_size=batch_size, seed=seed, dropout=dropout, class_weights=class_weights,
                                      keep_scores=(0, epochs - 1))
            oof[rows] = measured["scores"]
        splits = {name: getattr(dataset, name) for name in SPLITS}
        digests = dict(zip(SPLITS, content_digests([splits[name].paths for name in SPLITS]), strict=True))
        names: list[str | None] = [None] * dataset.num_outputs
        for name, label in dataset.labels.items():
            names[label] = name
        shown = {name: sets[name].features if near_duplicates else np.zeros((len(sets[name].labels), 1), np.float32)
                 for name in SPLITS}
        report = check_health(shown,
                              {name: np.asarray(sets[name].labels) for name in SPLITS},
                              {name: splits[name].paths for name in SPLITS}, names, digests=digests, oof_scores=oof)
        report.checked["label_check_images"] = int(len(rows))
    return report
