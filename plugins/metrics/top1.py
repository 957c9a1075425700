"""Top-1 accuracy on the validation images: the share whose best-scoring output is their label id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.hookspecs import hookimpl

if TYPE_CHECKING:
    from tlcore.evaluation import Predictions
    from tlcore.report import Reporter


@hookimpl(trylast=True)
def tl_evaluate(predictions: Predictions, reporter: Reporter) -> dict[str, Any] | None:
    correct = int((predictions.predicted == predictions.label_ids).sum())
    total = len(predictions)
    accuracy = correct / total
    of = f" of the {predictions.model}" if predictions.model else ""
    reporter.info(f"Top-1 accuracy{of}: {fraction(correct, total)} ({correct} of {total} {predictions.split} images)")
    return {"top_1_accuracy": accuracy, "num_images": total}


def fraction(part: int, whole: int, digits: int = 4) -> str:
    """``part / whole`` with ``digits`` decimals, rounded down, so that 29,999 of 30,000 reads 0.9999, never
    1.0000 (only all of them is 1)."""
    scale = 10**digits
    return f"{part * scale // whole / scale:.{digits}f}"
