"""Tables of a run, for people and scripts: the confusion matrix (JSON), the misclassified validation
images and the epoch history (CSV)."""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from tlcore.hookspecs import hookimpl
from tlcore.outputs import check_owned
from tlcore.text import neutralise

from tlplugins.metrics.confusion import confusion_matrix, display_name
from tlplugins.reports import CONFUSION_JSON, HISTORY_COLUMNS, HISTORY_CSV, MISCLASSIFIED_CSV

if TYPE_CHECKING:
    from pathlib import Path

    from tlcore.config import RunConfig
    from tlcore.evaluation import Predictions

MISCLASSIFIED_COLUMNS = ("path", "true_label", "predicted_label", "predicted_score", "true_label_score")
WRITES = (CONFUSION_JSON, MISCLASSIFIED_CSV, HISTORY_CSV)


@hookimpl
def tl_on_run_start(config: RunConfig) -> None:
    check_owned(config.evaluate_result_dir, WRITES)  # a file of the user's there is refused before training


@hookimpl(trylast=True)
def tl_write_reports(predictions: Predictions, history: Sequence[Mapping[str, float]], path: Path) -> list[str] | None:
    (path / CONFUSION_JSON).write_text(json.dumps(confusion_matrix(predictions).to_json(), ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    write_csv(path / MISCLASSIFIED_CSV, MISCLASSIFIED_COLUMNS, misclassified(predictions))
    columns = history_columns(history)
    write_csv(path / HISTORY_CSV, columns, ([epoch.get(name, "") for name in columns] for epoch in history))
    return list(WRITES)


def misclassified(predictions: Predictions) -> Any:
    """Rows of the validation images whose best score is not their class, most confident mistake first
    (they are the likeliest to be labelled wrongly): path, true label, predicted label, the predicted label's
    score and the true label's score."""
    import numpy as np

    predicted, true = predictions.predicted, predictions.label_ids
    rows = np.flatnonzero(predicted != true)
    names = predictions.class_names
    found = [(predictions.paths[i], display_name(names, int(true[i])), display_name(names, int(predicted[i])),
              float(predictions.scores[i, predicted[i]]), float(predictions.scores[i, true[i]])) for i in rows]
    return sorted(found, key=lambda row: (-row[3], row[0]))


def history_columns(history: Sequence[Mapping[str, Any]]) -> Any:
    """``epoch``, ``loss``, ``acc``, ``val_loss``, ``val_acc``, then any other value a trainer logged."""
    extra = [name for epoch in history for name in epoch if name not in HISTORY_COLUMNS]
    return [*HISTORY_COLUMNS, *dict.fromkeys(extra)]


def write_csv(file: Path, columns: Sequence[str], rows: Any) -> None:
    with open(file, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([neutralise(cell) for cell in row] for row in rows)
