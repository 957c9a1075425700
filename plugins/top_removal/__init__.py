"""Top-removal plugins: turn a base model into a feature extractor."""

from __future__ import annotations

from tlcore.keys import SHARED

CLASSIFIER_WIDTHS = (1000, 1001)
"""Outputs of an ImageNet classifier (1001: with a background class, as TensorFlow's slim models)."""

NOTHING_REMOVED = 'Top layers: none removed ("remove_top": false); features are '
"""How both removals say that ``"remove_top": false`` kept every layer."""


def unlike_a_classifier(last: str, width: int | None, softmax: bool) -> str | None:
    """The warning for layers removed as a classification head when the last of them (``last``, with ``width``
    outputs) does not look like a classifier's: no softmax, and not an ImageNet classifier's 1000 or 1001 outputs
    (a model whose last layer is an embedding, say); None when it does."""
    if softmax or width in CLASSIFIER_WIDTHS:
        return None
    outputs = f"{width} outputs" if width else "its outputs"
    return (f'top removal: the last layer, "{last}" ({outputs}, no softmax), does not look like a classifier, '
            'yet it was removed with the layers counted as its head; if it gives the features you want, set '
            '"remove_top": false')
