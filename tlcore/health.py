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
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from tlcore.head_search import SEARCH_IMAGES, Settings, cross_validate, fold_count, stratified_folds, stratified_sample
from tlcore.outputs import _umask, write_json_atomic

if TYPE_CHECKING:
    import numpy as np

    from tlcore.dataset import DatasetIndex
    from tlcore.report import Reporter

SPLITS = ("training", "validation")

KINDS = ("duplicate_across_splits", "duplicate_conflicting_labels", "duplicate_within_split", "likely_mislabelled",
         "few_images", "imbalance")
"""The kinds of finding, in the order they are reported (the most harmful first)."""

HEALTH_CSV = "data_health.csv"
HEALTH_JSON = "data_health.json"
CSV_COLUMNS = ("kind", "path", "other_path", "split", "other_split", "label", "other_label", "score", "detail")

DUPLICATE_THRESHOLD = 0.78
"""Cosine similarity of the images' features (square-rooted, mean-centred, L2-normalised: see
:func:`find_duplicates`) from which two images are near-duplicates.

Measured with bench/health.py (MobileNetV2, ImageNet weights, 224 px, average pooling) on examples/photos (small
photos, 224 x 126): the same photo re-encoded at JPEG quality 70 scores 0.90-0.98 with its original, cropped by 8 %
0.81-0.91, resized to 60 % (which here loses real detail) 0.75-0.84; the most similar two different photos of
the dataset (two photos of the same brand of scissors) 0.73, the next 0.68. 0.78 keeps a margin above different
photos and finds 15 of the 16 planted copies; raw features separate worse (copies from 0.83, different photos
up to 0.83), mean-centring alone too (0.73 and 0.76)."""

LSH_BITS = None
"""Hyperplanes per LSH table; None: about log2 of the number of images (see :func:`_lsh_shape`)."""
LSH_TABLES = 64
"""LSH tables. With the default bits, a pair at the threshold (0.78) shares a bucket of at least one of them
with probability 0.99+ up to 30k images, 0.9 at 100k, 0.65 at 300k; a pair at 0.85 with 0.99 at 100k and 0.9 at
300k; copies that are re-encoded or slightly resized (0.9+) with 0.99+ throughout."""
MAX_BUCKET = 48
"""A bucket with more images is cut into pieces of this many (ordered by another random projection, so that
neighbours stay together): one crowded bucket costs at most ``MAX_BUCKET / 2`` pairs per image."""

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


@dataclass(frozen=True)
class Finding:
    """One thing worth a look: ``kind`` (one of :data:`KINDS`), the image files involved (``paths``: one or two;
    none for a class finding), their ``splits`` and class names (``labels``; for a class finding the class, or
    the largest and smallest class), a short human ``detail``, and a ``score``: the cosine similarity for a
    duplicate, the out-of-fold margin (other class's probability - given class's) for a likely wrong label,
    the number of training images for a thin class, the largest / smallest ratio for an imbalance."""

    kind: str
    paths: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    detail: str = ""
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "paths": list(self.paths), "splits": list(self.splits),
                "labels": list(self.labels), "detail": self.detail, "score": round(float(self.score), 6)}

    def row(self) -> list[str]:
        """The finding's row of data_health.csv (:data:`CSV_COLUMNS`), neutralised for spreadsheets."""
        def at(values: tuple[str, ...], index: int) -> str:
            return values[index] if len(values) > index else ""

        cells = [self.kind, at(self.paths, 0), at(self.paths, 1), at(self.splits, 0), at(self.splits, 1),
                 at(self.labels, 0), at(self.labels, 1), f"{self.score:.4f}", self.detail]
        return [neutralise(cell) for cell in cells]


def neutralise(cell: str) -> str:
    """``cell`` with a leading quote when a spreadsheet would take it for a formula (it starts with = + - @, a
    tab or a carriage return): a file name like ``=HYPERLINK(...)`` must stay text when data_health.csv is opened."""
    text = str(cell)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@dataclass
class HealthReport:
    """The findings of a data check and what was checked (``checked``: images per split, pairs verified, seconds,
    the settings)."""

    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]

    def warning_lines(self) -> list[str]:
        """One line per kind of finding, with its count, most harmful first; none for a clean dataset."""
        where = f"({HEALTH_CSV} lists them)"
        lines = []
        across = self.of_kind("duplicate_across_splits")
        if across:
            count = _validation_images_with_training_twin(self.findings)
            lines.append(f"data check: {count} validation image{_s(count)} {_are(count)} also in training (identical "
                         f"or near-identical), which inflates validation accuracy {where}")
        conflicting = self.of_kind("duplicate_conflicting_labels")
        if conflicting:
            count = len(conflicting)
            lines.append(f"data check: {count} pair{_s(count)} of identical or near-identical images carr{_y(count)} "
                         f"different labels {where}")
        within = self.of_kind("duplicate_within_split")
        if within:
            count = len(within)
            lines.append(f"data check: {count} image{_s(count)} {_are(count)} a duplicate of another of the same class "
                         f"and split {where}")
        wrong = self.of_kind("likely_mislabelled")
        if wrong:
            count = len(wrong)
            lines.append(f"data check: {count} training image{_s(count)} may be labelled wrong: the model, trained "
                         f"without {'them' if count != 1 else 'it'}, confidently predicts another class {where}")
        few = self.of_kind("few_images")
        if few:
            names = ", ".join(finding.labels[0] for finding in few[:5]) + (", ..." if len(few) > 5 else "")
            lines.append(f"data check: {len(few)} class{'es' if len(few) != 1 else ''} {_have(len(few))} too few "
                         f"images to learn or measure well ({names}) {where}")
        for finding in self.of_kind("imbalance"):
            lines.append(f"data check: the classes are imbalanced: {finding.detail}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [finding.to_dict() for finding in self.findings], "checked": self.checked}

    def write(self, folder: Path) -> list[str]:
        """Write ``data_health.csv`` (one row per finding, :data:`CSV_COLUMNS`) and ``data_health.json`` (the
        findings and ``checked``) into ``folder``, each via a temporary file and a rename; return their names."""
        folder = Path(folder)
        buffer = io.StringIO()
        writer = csv.writer(buffer)  # "\r\n" ends rows, so a cell with either character is quoted
        writer.writerow(CSV_COLUMNS)
        writer.writerows(finding.row() for finding in self.findings)
        handle, temporary = tempfile.mkstemp(prefix=f".{HEALTH_CSV}.tl-partial-", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(buffer.getvalue())
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, folder / HEALTH_CSV)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        write_json_atomic(folder / HEALTH_JSON, self.to_dict())
        return [HEALTH_CSV, HEALTH_JSON]


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _are(count: int) -> str:
    return "is" if count == 1 else "are"


def _have(count: int) -> str:
    return "has" if count == 1 else "have"


def _y(count: int) -> str:
    return "ies" if count == 1 else "y"


def _validation_images_with_training_twin(findings: Iterable[Finding]) -> int:
    """The validation images in a group of duplicates that holds a training image: duplicate pairs are reported
    as a spanning tree of each group, so a validation image may meet training only through another image."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(node: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for finding in findings:
        if finding.kind.startswith("duplicate_") and len(finding.paths) == 2:
            a, b = (root((split, path)) for split, path in zip(finding.splits, finding.paths, strict=True))
            parent[a] = b
    with_training = {root(node) for node in list(parent) if node[0] == "training"}
    return sum(1 for node in list(parent) if node[0] == "validation" and root(node) in with_training)


def file_digests(paths: Iterable[str]) -> list[str]:
    """The sha256 of each file's content (hex); ``""`` for a file that cannot be read, which then matches nothing."""
    digests = []
    for path in paths:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            digests.append("")
            continue
        digests.append(digest.hexdigest())
    return digests


def find_duplicates(features: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                    paths: Mapping[str, Sequence[str]], digests: Mapping[str, Sequence[str]] | None,
                    class_names: Sequence[str | None], threshold: float = DUPLICATE_THRESHOLD, *,
                    stats: dict[str, Any] | None = None, seed: int = 0, bits: int | None = LSH_BITS,
                    tables: int = LSH_TABLES, max_bucket: int = MAX_BUCKET) -> list[Finding]:
    """Identical and near-identical images within and across the splits ("training", "validation").

    :param features: ``{split: n x dim}`` pooled features, one row per image (n x views x dim: view 0, the image
        itself, is used). Rows that are all zero (images that could not be decoded) take part only by digest.
    :param labels: ``{split: n}`` label ids (indices into ``class_names``).
    :param paths: ``{split: n}`` image files.
    :param digests: ``{split: n}`` sha256 of each file; None: computed here (:func:`file_digests`).
    :param threshold: the cosine similarity from which two images are near-duplicates
        (:data:`DUPLICATE_THRESHOLD`), of their features square-rooted (sign kept; the power normalisation that
        keeps a few large activations from dominating), mean-centred (pooled ReLU features all point one way,
        so raw cosines of unrelated images are high) and L2-normalised; measured to separate copies from
        different photos better than raw or only centred features.
    :param stats: when given, filled with what was checked: ``pairs_verified`` (candidate pairs whose cosine was
        computed), ``identical_groups``, the LSH ``bits`` and ``tables``.
    :returns: one finding per pair, each group of duplicates reported as a spanning tree of its most similar
        pairs (k images, k - 1 findings), which keeps one pair across the splits and one across the labels
        wherever the group has them. A pair of different labels is ``duplicate_conflicting_labels`` (in any
        splits), else a pair in training and validation is ``duplicate_across_splits``, else
        ``duplicate_within_split``. Most harmful kind first, most similar first.
    """
    import numpy as np

    splits = [name for name in SPLITS if name in features]
    blocks: list[np.ndarray] = []
    split_of: list[np.ndarray] = []
    label_of: list[np.ndarray] = []
    all_paths: list[str] = []
    all_digests: list[str] = []
    for index, name in enumerate(splits):
        values = np.asarray(features[name])
        values = values[:, 0] if values.ndim == 3 else values
        count = len(values)
        if len(labels[name]) != count or len(paths[name]) != count:
            raise ValueError(f"{name}: {count} feature rows, {len(labels[name])} labels, {len(paths[name])} paths")
        blocks.append(values)
        split_of.append(np.full(count, index, dtype=np.int64))
        label_of.append(np.asarray(labels[name], dtype=np.int64))
        all_paths.extend(str(path) for path in paths[name])
        all_digests.extend(file_digests(paths[name]) if digests is None else [str(d) for d in digests[name]])
    total = len(all_paths)
    stats = {} if stats is None else stats
    stats.update(images={name: len(block) for name, block in zip(splits, blocks, strict=True)}, pairs_verified=0,
                 identical_groups=0, threshold=threshold)
    if total < 2:
        return []
    split_ids = np.concatenate(split_of)
    label_ids = np.concatenate(label_of)

    edges: dict[int, float] = {}  # pair code (i * total + j, i < j) -> cosine similarity
    identical: set[int] = set()
    groups: dict[str, list[int]] = {}
    for index, digest in enumerate(all_digests):
        if digest:
            groups.setdefault(digest, []).append(index)
    for members in groups.values():
        if len(members) > 1:
            stats["identical_groups"] += 1
            for other in members[1:]:
                code = members[0] * total + other
                edges[code] = 1.0
                identical.add(code)

    dim = blocks[0].shape[1] if blocks[0].ndim == 2 else 0
    x = np.empty((total, dim), dtype=np.float32)
    start = 0
    for block in blocks:
        x[start:start + len(block)] = block
        start += len(block)
    norms = np.linalg.norm(x, axis=1)
    usable = np.flatnonzero(np.isfinite(norms) & (norms > 0))
    if len(usable) > 1:
        x = x[usable]
        x = np.sign(x) * np.sqrt(np.abs(x))  # a few large activations dominate raw cosines: square roots even them
        x -= x.mean(axis=0, dtype=np.float64).astype(np.float32)  # pooled ReLU features all share a direction
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x /= np.maximum(norms, 1e-12)
        shape = _lsh_shape(len(x), bits, tables)
        stats.update(bits=shape[0], tables=shape[1])
        candidates = _candidate_pairs(x, *shape, max_bucket, seed)
        stats["pairs_verified"] = int(len(candidates))
        first, second = np.divmod(candidates, len(x))
        similarity = _cosines(x, first, second)
        close = similarity >= threshold
        for i, j, value in zip(usable[first[close]], usable[second[close]], similarity[close], strict=True):
            code = int(min(i, j)) * total + int(max(i, j))
            edges[code] = max(float(value), edges.get(code, 0.0)) if code not in identical else 1.0
    findings = []
    for code, value in _spanning_forest(edges, identical, total):
        i, j = divmod(code, total)
        if split_ids[i] > split_ids[j]:
            i, j = j, i
        findings.append(_duplicate(i, j, value, code in identical, splits, split_ids, label_ids, all_paths,
                                   class_names))
    findings.sort(key=lambda f: (KINDS.index(f.kind), -f.score, f.paths))
    return findings


def _lsh_shape(count: int, bits: int | None, tables: int) -> tuple[int, int]:
    """``(bits, tables)``: by default about log2(count) - 1 hyperplanes per table, so that two unrelated images
    (an angle near 90 degrees: each hyperplane separates them with probability 1/2) share a bucket of a table
    with probability about 2/count, and each table costs about ``count`` chance pairs."""
    if bits is None:
        bits = min(30, max(6, math.ceil(math.log2(max(count, 2))) - 1))
    return bits, tables


def _candidate_pairs(x: np.ndarray, bits: int, tables: int, max_bucket: int, seed: int) -> np.ndarray:
    """Pairs of rows of ``x`` (normalised) that share a bucket of a random-hyperplane LSH table, as sorted unique
    codes ``i * n + j`` (i < j).

    Two rows at an angle theta fall on the same side of a random hyperplane with probability 1 - theta / pi, so
    they share a bucket of ``bits`` hyperplanes with probability (1 - theta / pi) ** bits, and one of ``tables``
    buckets with 1 - (1 - (1 - theta / pi) ** bits) ** tables: near 1 for near-duplicates, near 0 for unrelated
    images. A bucket larger than ``max_bucket`` (a crowd of very similar images) is cut into consecutive pieces
    in the order of one more random projection, so that the pairs stay linear in n.
    """
    import numpy as np

    count, dim = x.shape
    rng = np.random.default_rng(seed)
    planes = rng.standard_normal((dim, bits * tables)).astype(np.float32)
    tiebreak = x @ rng.standard_normal(dim).astype(np.float32)
    weights = np.ldexp(1.0, np.arange(bits)).astype(np.float32)  # exact: a key is an integer below 2 ** 30
    keys = np.empty((count, tables), dtype=np.int64)
    step = max(1, 2**22 // (bits * tables))
    for start in range(0, count, step):
        sides = ((x[start:start + step] @ planes) > 0).astype(np.float32).reshape(-1, bits)
        keys[start:start + step] = (sides.astype(np.float64) @ weights.astype(np.float64)).reshape(-1, tables)
    found: list[np.ndarray] = []
    pending = 0
    for table in range(tables):
        order = np.lexsort((tiebreak, keys[:, table]))
        key = keys[order, table]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        sizes = np.diff(np.r_[starts, count])
        crowded = sizes > max_bucket
        if crowded.any():
            cuts = [np.arange(s + max_bucket, s + size, max_bucket) for s, size in zip(starts[crowded],
                                                                                        sizes[crowded], strict=True)]
            starts = np.sort(np.concatenate([starts, *cuts]))
            sizes = np.diff(np.r_[starts, count])
        for size in np.unique(sizes[sizes > 1]):
            first, second = np.triu_indices(int(size), 1)
            at = starts[sizes == size][:, None]
            a, b = order[at + first].ravel(), order[at + second].ravel()
            found.append(np.minimum(a, b) * count + np.maximum(a, b))
            pending += len(a)
        if pending > 8 * count:  # bound the memory: merge the repeats found so far
            found = [np.unique(np.concatenate(found))]
            pending = len(found[0])
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def _cosines(x: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The dot products of rows ``first`` and ``second`` of ``x`` (normalised: their cosines), in chunks of
    about 64 MiB."""
    import numpy as np

    out = np.empty(len(first), dtype=np.float32)
    step = max(1, 2**24 // max(1, x.shape[1]))
    for start in range(0, len(first), step):
        a, b = x[first[start:start + step]], x[second[start:start + step]]
        out[start:start + step] = np.einsum("ij,ij->i", a, b)
    return out


def _spanning_forest(edges: Mapping[int, float], identical: set[int], total: int) -> list[tuple[int, float]]:
    """The edges of a maximum spanning forest (identical files first, then by similarity): each group of
    duplicates connected by k - 1 of its verified pairs."""
    parent = list(range(total))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    kept = []
    for code, value in sorted(edges.items(), key=lambda item: (item[0] not in identical, -item[1], item[0])):
        a, b = root(code // total), root(code % total)
        if a != b:
            parent[a] = b
            kept.append((code, value))
    return kept


def _duplicate(i: int, j: int, similarity: float, same_file: bool, splits: Sequence[str], split_ids: np.ndarray,
               label_ids: np.ndarray, paths: Sequence[str], class_names: Sequence[str | None]) -> Finding:
    names = (_name(class_names, int(label_ids[i])), _name(class_names, int(label_ids[j])))
    where = (splits[split_ids[i]], splits[split_ids[j]])
    what = "identical files" if same_file else f"near-identical images (cosine similarity {similarity:.3f})"
    if label_ids[i] != label_ids[j]:
        kind, detail = "duplicate_conflicting_labels", f"{what} labelled {names[0]} and {names[1]}"
    elif where[0] != where[1]:
        kind, detail = "duplicate_across_splits", f"{what} in training and validation"
    else:
        kind, detail = "duplicate_within_split", f"{what} in {where[0]}"
    return Finding(kind, (paths[i], paths[j]), where, names, detail, 1.0 if same_file else float(similarity))


def _name(class_names: Sequence[str | None], label: int) -> str:
    name = class_names[label] if 0 <= label < len(class_names) else None
    return name if name is not None else f"(label id {label})"


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


def content_digests(paths: Sequence[Sequence[str]]) -> list[list[str]]:
    """:func:`file_digests` of the files of every list in ``paths``, reading only those whose size another file
    shares (only they can be identical); the others get a token of their own, which matches nothing."""
    sizes: dict[int, int] = {}
    stat: list[list[int]] = []
    for group in paths:
        stat.append([])
        for path in group:
            try:
                size = os.stat(path).st_size
            except OSError:
                size = -1
            stat[-1].append(size)
            sizes[size] = sizes.get(size, 0) + 1
    result = []
    for number, (group, group_sizes) in enumerate(zip(paths, stat, strict=True)):
        shared = [index for index, size in enumerate(group_sizes) if sizes[size] > 1 and size >= 0]
        digests = [f"unique:{number}:{index}" for index in range(len(group))]
        for index, digest in zip(shared, file_digests(group[index] for index in shared), strict=True):
            digests[index] = digest or f"unreadable:{number}:{index}"
        result.append(digests)
    return result


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
