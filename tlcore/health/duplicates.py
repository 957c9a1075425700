"""The same picture twice: identical files (sha256) and near-identical images (cosine similarity of their
features), the candidate pairs found by random-hyperplane LSH rather than by comparing every pair."""

from __future__ import annotations

import hashlib
import math
import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from tlcore.health.report import KINDS, SPLITS, Finding

if TYPE_CHECKING:
    import numpy as np

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


def _name(class_names: Sequence[str | None], label: int) -> str:
    name = class_names[label] if 0 <= label < len(class_names) else None
    return name if name is not None else f"(label id {label})"
