"""Likely wrong labels (out-of-fold predictions that confidently name another class) and classes with too few
images or a strong imbalance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from tlcore.health.duplicates import _name
from tlcore.health.report import Finding, _s

if TYPE_CHECKING:
    import numpy as np

MIN_TRAINING_IMAGES = 10
"""A class with fewer training images is hard to learn: transfer learning works from about 10 per class up,
and with fewer every image is one tenth of the class."""
MIN_VALIDATION_IMAGES = 2
"""A class with fewer validation images is not measured: its recall is 0 %, 100 % or undefined."""
IMBALANCE_RATIO = 10.0
"""Largest / smallest class (training images) from which the imbalance is reported: at 10:1 a classifier
gains more by predicting the large class than by learning the small one, and the small class's recall suffers."""

MAX_LABEL_FINDINGS = 1000
"""At most this many likely-mislabelled images are reported, the most likely first."""
MIN_CONFIDENCE = 0.5
"""The other class's out-of-fold probability must also reach this: it is more likely than every other class
together, so a weak classifier's low thresholds do not turn doubt into findings."""

def find_label_issues(oof_scores: np.ndarray, labels: np.ndarray, paths: Sequence[str],
                      class_names: Sequence[str | None], max_findings: int = MAX_LABEL_FINDINGS, *,
                      split: str = "training", min_confidence: float = MIN_CONFIDENCE) -> list[Finding]:
    """Images whose out-of-fold prediction confidently disagrees with their label, the most likely first.

    In the spirit of confident learning (Northcutt et al., 2021): each class's threshold is the mean
    probability the out-of-fold model gives the class on its own images (its self-confidence), so a class the
    model finds hard gets a lower bar. An image is flagged when its given class stays below its own threshold,
    another class is the more probable and reaches its threshold lowered by that shortfall (and at least
    ``min_confidence``): the further the label falls below what its class's images get, the less the other
    class needs to match the confidence of its own images (a planted flip scores its given class near 0 while
    its true class, an easy one, averages above what one image reaches). Ranked by the margin (other class's
    probability - given class's), which is the finding's score.

    :param oof_scores: n x C class probabilities, each row from a model that was not trained on that image;
        columns are label ids. Rows with NaN (not scored) are skipped.
    :param labels: the n given label ids.
    :param max_findings: at most this many, the most likely first.
    :param split: the split the images are of, for the findings.
    """
    import numpy as np

    scores = np.asarray(oof_scores, dtype=np.float64)
    given = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(given) or len(paths) != len(given):
        raise ValueError(f"{scores.shape} scores, {len(given)} labels, {len(paths)} paths")
    count, classes = scores.shape
    if not count:
        return []
    scored = np.isfinite(scores).all(axis=1)
    thresholds = np.full(classes, np.inf)
    for label in np.unique(given[scored]):
        thresholds[label] = scores[scored & (given == label), label].mean()
    rows = np.arange(count)
    own = scores[rows, given]
    shortfall = np.where(scored, thresholds[given] - own, 0.0)  # how far below its class's images the label sits
    bar = np.maximum(thresholds[None, :] - np.maximum(shortfall, 0.0)[:, None], min_confidence)
    candidates = np.where(scores >= bar, scores, -np.inf)
    candidates[rows, given] = -np.inf
    other = candidates.argmax(axis=1)
    other_score = candidates[rows, other]
    flagged = scored & np.isfinite(other_score) & (own < thresholds[given]) & (other_score > own)
    margin = other_score - own
    chosen = np.flatnonzero(flagged)
    chosen = chosen[np.lexsort((chosen, -margin[chosen]))][:max_findings]
    findings = []
    for row in chosen:
        name, guess = _name(class_names, int(given[row])), _name(class_names, int(other[row]))
        detail = (f"labelled {name} ({own[row]:.2f}; its images average {thresholds[given[row]]:.2f}), predicted "
                  f"{guess} ({other_score[row]:.2f}) by a model that did not see it")
        findings.append(Finding("likely_mislabelled", (str(paths[row]),), (split,), (name, guess), detail,
                                float(margin[row])))
    return findings


def class_findings(training: Mapping[str, int], validation: Mapping[str, int],
                   min_images: int = MIN_TRAINING_IMAGES, min_validation: int = MIN_VALIDATION_IMAGES,
                   imbalance_ratio: float = IMBALANCE_RATIO) -> list[Finding]:
    """Classes with fewer than ``min_images`` training or ``min_validation`` validation images (why those
    numbers: :data:`MIN_TRAINING_IMAGES`, :data:`MIN_VALIDATION_IMAGES`), and one ``imbalance`` finding when the
    largest class has at least ``imbalance_ratio`` times the training images of the smallest (classes without
    training images are reported as few, not counted in the ratio).

    :param training: class name -> number of training images (every class, zeros included).
    :param validation: class name -> number of validation images.
    """
    findings = []
    for name in sorted(set(training) | set(validation)):
        have, measured = int(training.get(name, 0)), int(validation.get(name, 0))
        short = tuple(split for split, number, least in (("training", have, min_images),
                                                         ("validation", measured, min_validation)) if number < least)
        if short:
            findings.append(Finding(
                "few_images", (), short, (name,),
                f"{have} training and {measured} validation image{_s(measured)} (fewer than {min_images} training "
                f"or {min_validation} validation images)", float(have)))
    present = {name: int(number) for name, number in training.items() if number > 0}
    if len(present) > 1:
        largest = max(sorted(present), key=lambda name: present[name])
        smallest = min(sorted(present), key=lambda name: present[name])
        ratio = present[largest] / present[smallest]
        if ratio >= imbalance_ratio:
            findings.append(Finding(
                "imbalance", (), ("training",), (largest, smallest),
                f"{largest} has {present[largest]} training images, {smallest} {present[smallest]} ({ratio:.0f}:1)",
                ratio))
    return findings
