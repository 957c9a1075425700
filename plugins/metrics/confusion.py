"""Counting over predictions, shared by the metric and the report plugins (a helper module: no hooks).

Everything here works on :class:`tlcore.evaluation.Predictions`, so it serves every framework,
float or quantized. numpy is imported inside the functions, like in every plugin module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from tlcore.evaluation import Predictions


def display_name(class_names: Sequence[str | None], label_id: int) -> Any:
    """The class name of output ``label_id``, or ``(unused id N)`` where labels.json has no class with that id."""
    name = class_names[label_id] if label_id < len(class_names) else None
    return name if name is not None else f"(unused id {label_id})"


DENSE_CLASSES = 100
"""Up to this many classes, confusion_matrix.json holds the whole matrix; above, only its non-zero cells."""


@dataclass(frozen=True)
class Confusion:
    """How often each true class was predicted as each class.

    ``label_ids`` are the classes shown, in id order: every class of labels.json, and any output
    id that is not a class but was predicted (a model with gaps in its ids can still score one);
    ``names`` are their display names; ``counts[t][p]`` is the number of images of class
    ``label_ids[t]`` predicted as ``label_ids[p]`` (rows: true class, columns: predicted class).
    """

    label_ids: tuple[int, ...]
    names: tuple[str, ...]
    counts: Any  # numpy int64 array, len(label_ids) x len(label_ids)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def correct(self) -> int:
        return int(self.counts.trace())

    def images(self) -> Any:
        """Validation images per class (row sums)."""
        return self.counts.sum(axis=1)

    def predicted(self) -> Any:
        """Images predicted as each class (column sums)."""
        return self.counts.sum(axis=0)

    def scores(self) -> Any:
        """``(precision, recall, f1)`` per class as float arrays; an undefined ratio (no image predicted as
        the class, or none of it) is 0, as scikit-learn's ``zero_division=0`` gives."""
        import numpy as np

        hits = np.diag(self.counts).astype(np.float64)
        precision = np.divide(hits, self.predicted(), out=np.zeros_like(hits), where=self.predicted() > 0)
        recall = np.divide(hits, self.images(), out=np.zeros_like(hits), where=self.images() > 0)
        both = precision + recall
        f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
        return precision, recall, f1

    def to_json(self) -> dict[str, Any]:
        """The counts as ``matrix`` (a row per true class) up to :data:`DENSE_CLASSES` classes; above, as
        ``cells``, ``[row, column, count]`` of the non-zero counts only (1000 classes would be a million
        numbers, nearly all 0)."""
        import numpy as np

        data = {
            "rows": "true class",
            "columns": "predicted class",
            "classes": list(self.names),
            "label_ids": list(self.label_ids),
            "num_images": self.total,
        }
        if len(self.label_ids) <= DENSE_CLASSES:
            return {**data, "matrix": self.counts.tolist()}
        rows, columns = np.nonzero(self.counts)
        return {**data, "cells": [[int(row), int(column), int(self.counts[row, column])]
                                  for row, column in zip(rows, columns, strict=True)]}


def confusion_matrix(predictions: Predictions) -> Confusion:
    """The :class:`Confusion` of ``predictions``."""
    import numpy as np

    true, predicted = predictions.label_ids, predictions.predicted
    named = [label for label, name in enumerate(predictions.class_names) if name is not None]
    ids = sorted(set(named) | set(true.tolist()) | set(predicted.tolist()))
    row = np.zeros(max(ids) + 1, dtype=np.int64)
    row[ids] = np.arange(len(ids))
    counts = np.zeros((len(ids), len(ids)), dtype=np.int64)
    np.add.at(counts, (row[true], row[predicted]), 1)
    return Confusion(tuple(ids), tuple(display_name(predictions.class_names, label) for label in ids), counts)


def num_classes(predictions: Predictions) -> int:
    """The number of classes (labels.json entries) the model tells apart."""
    return sum(name is not None for name in predictions.class_names)
