"""Top-5 accuracy on the validation images, when there are more than 5 classes: the share whose label id is
among their 5 best-scoring outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.hookspecs import hookimpl

from tlplugins.metrics.confusion import num_classes

if TYPE_CHECKING:
    from tlcore.evaluation import Predictions
    from tlcore.report import Reporter

K = 5


@hookimpl(trylast=True)
def tl_evaluate(predictions: Predictions, reporter: Reporter) -> dict[str, Any] | None:
    if num_classes(predictions) <= K:
        return None  # with 5 classes or fewer, every image is right in the top 5
    hits = int((predictions.top_k(K) == predictions.label_ids[:, None]).any(axis=1).sum())
    total = len(predictions)
    accuracy = hits / total
    of = f" of the {predictions.model}" if predictions.model else ""
    reporter.info(f"Top-{K} accuracy{of}: {accuracy:.4f} ({hits} of {total} {predictions.split} images)")
    return {f"top_{K}_accuracy": accuracy}
