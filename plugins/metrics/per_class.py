"""Per-class figures on the validation images, by class name in label-id order: Top-1 accuracy, the number
of images, and precision, recall and F1 (from the confusion matrix; 0 where a ratio is undefined)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.hookspecs import hookimpl

from tlplugins.metrics.confusion import confusion_matrix

if TYPE_CHECKING:
    from tlcore.dataset import DatasetIndex
    from tlcore.evaluation import Predictions


@hookimpl(trylast=True)
def tl_evaluate(predictions: Predictions, dataset: DatasetIndex) -> dict[str, Any] | None:
    predicted = predictions.predicted
    confusion = confusion_matrix(predictions)
    precision, recall, f1 = confusion.scores()
    row = {label: index for index, label in enumerate(confusion.label_ids)}
    per_class = {}
    for name, label in sorted(dataset.labels.items(), key=lambda item: item[1]):
        mine = predictions.label_ids == label
        total = int(mine.sum())
        if total:
            at = row[label]
            per_class[name] = {
                "top_1_accuracy": float((predicted[mine] == label).sum() / total),
                "num_images": total,
                "precision": float(precision[at]),
                "recall": float(recall[at]),
                "f1": float(f1[at]),
            }
    return {"per_class": per_class}
