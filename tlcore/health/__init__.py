"""A data health check over the features tl already computes: duplicates, likely wrong labels, thin classes.

A dataset's flaws cost more accuracy than most training settings, and they hide in plain sight: the same photo
in training and validation makes validation accuracy a memory test; a photo twice in training under two classes
teaches the model both answers; a photo filed under the wrong class teaches it the wrong one; a class of five
images cannot be learnt nor measured. The pooled base-model features (one float32 row per image, cached for
training anyway) are enough to find all of these without looking at a pixel again:

- :func:`find_duplicates`: identical files (same sha256) and near-identical images (the same photo re-encoded,
  resized or slightly cropped: cosine similarity of their square-rooted, mean-centred features at or above
  :data:`DUPLICATE_THRESHOLD`). Comparing every pair is quadratic (4.5e10 pairs at 300k images), so candidate
  pairs come from random-hyperplane LSH and only they are verified by exact cosine.
- :func:`find_label_issues`: images whose out-of-fold prediction confidently names another class (in the spirit
  of confident learning: per-class thresholds are the class's mean self-confidence).
- :func:`class_findings`: classes with too few images, and a strong imbalance.

:class:`HealthReport` holds the findings, says them in one warning line per kind, and writes them to
``data_health.csv`` and ``data_health.json``. Everything here is numpy only, and numpy is imported inside the
functions, so importing the core stays light.

The package: :mod:`~tlcore.health.report` (the findings and their files), :mod:`~tlcore.health.duplicates`,
:mod:`~tlcore.health.labels` (wrong labels and classes) and :mod:`~tlcore.health.check` (the whole check).
"""

from tlcore.health.check import check_dataset, check_health
from tlcore.health.duplicates import DUPLICATE_THRESHOLD, content_digests, file_digests, find_duplicates
from tlcore.health.labels import class_findings, find_label_issues
from tlcore.health.report import (
    CSV_COLUMNS, HEALTH_CSV, HEALTH_JSON, KINDS, SPLITS, Finding, HealthReport, duplicate_groups,
)

__all__ = ["CSV_COLUMNS", "DUPLICATE_THRESHOLD", "Finding", "HEALTH_CSV", "HEALTH_JSON", "HealthReport", "KINDS",
           "SPLITS", "check_dataset", "check_health", "class_findings", "content_digests", "duplicate_groups",
           "file_digests", "find_duplicates", "find_label_issues"]
