"""How well the data health check (tlcore/health.py) finds planted flaws in a real-photo dataset.

    python bench/health.py [DATASET] [--flips 8] [--seed 0] [--out FOLDER] [--keep]

DATASET is a root with training/, validation/ and labels.json (default: the first dataset under
~/.cache/tl-bench/datasets, else examples/photos/dataset). A copy of it gets planted flaws (:func:`plant`):

- duplicates of training images, each kind both across the splits (the copy in validation) and within
  training (the copy beside its original): an exact copy of the file, the photo re-encoded at JPEG quality
  70, resized to 60 %, and cropped by 8 % of each side's length (off-centre);
- label flips: ``--flips`` training images moved to another class's folder.

Features: Keras MobileNetV2, 224 px, ``mobilenet_v2.preprocess_input``, average pooling, ImageNet weights
when they are installed in ~/.keras/models (else random weights, and the figures mean little: a warning
says so). Out-of-fold scores: 5-fold logistic regression (scikit-learn) on the training features.

Prints the planted duplicates found / planted (goal >= 90 %), each one's cosine similarity, the rank of each
planted flip among the likely-mislabelled findings, the findings on the clean (unplanted) copy (false
alarms), and the most similar pairs of different clean images (what the threshold must stay above).
:func:`plant` and :func:`score` are reusable: a later version runs ``tl check`` on the planted copy instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tlcore import health  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
TRANSFORMS = ("exact", "jpeg_q70", "resize_60", "crop_8")
SCOPES = ("across", "within")
PER_CASE = 2
"""Planted duplicates per transform and scope."""
SIZE = 224


def images_of(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def default_dataset() -> Path:
    cache = Path.home() / ".cache" / "tl-bench" / "datasets"
    found = sorted(p.parent for p in cache.glob("*/labels.json")) if cache.is_dir() else []
    return found[0] if found else REPO / "examples" / "photos" / "dataset"


def plant(dataset_dir: Path, out_dir: Path, seed: int, flips: int = 8, per_case: int = PER_CASE) -> dict:
    """Copy the dataset ``dataset_dir`` to ``out_dir`` and plant flaws in the copy; return them:
    ``{"duplicates": [{"transform", "scope", "original", "copy"}], "flips": [{"path", "given", "true"}]}``
    (absolute paths in ``out_dir``; ``given`` is the wrong class a flipped image now sits in).

    Every planted image is made from a different training original, and no original is also flipped, so
    each case is scored on its own."""
    from PIL import Image

    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(dataset_dir, out_dir)
    rng = random.Random(seed)
    classes = sorted(p.name for p in (out_dir / "training").iterdir() if p.is_dir())
    training = images_of(out_dir / "training")
    needed = len(TRANSFORMS) * len(SCOPES) * per_case + flips
    if len(training) < needed:
        raise SystemExit(f"{dataset_dir}: {len(training)} training images, {needed} needed to plant")
    chosen = rng.sample(training, needed)
    planted: dict = {"duplicates": [], "flips": []}
    for number, (transform, scope) in enumerate((t, s) for t in TRANSFORMS for s in SCOPES for _ in range(per_case)):
        original = chosen[number]
        label = original.parent.name
        folder = out_dir / ("validation" if scope == "across" else "training") / label
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / f"planted_{transform}_{scope}_{number}{original.suffix if transform == 'exact' else '.jpg'}"
        if transform == "exact":
            shutil.copyfile(original, copy)
        else:
            with Image.open(original) as image:
                image = image.convert("RGB")
                width, height = image.size
                if transform == "resize_60":
                    image = image.resize((max(1, round(width * 0.6)), max(1, round(height * 0.6))),
                                         Image.Resampling.BILINEAR)
                elif transform == "crop_8":
                    cut_w, cut_h = round(width * 0.08), round(height * 0.08)
                    left, top = rng.randint(0, cut_w), rng.randint(0, cut_h)
                    image = image.crop((left, top, left + width - cut_w, top + height - cut_h))
                image.save(copy, "JPEG", quality=70 if transform == "jpeg_q70" else 90)
        planted["duplicates"].append({"transform": transform, "scope": scope, "original": str(original),
                                      "copy": str(copy)})
    for original in chosen[len(TRANSFORMS) * len(SCOPES) * per_case:]:
        true = original.parent.name
        given = rng.choice([name for name in classes if name != true])
        moved = out_dir / "training" / given / f"flipped_{original.name}"
        moved.parent.mkdir(parents=True, exist_ok=True)
        os.replace(original, moved)
        planted["flips"].append({"path": str(moved), "given": given, "true": true})
    return planted


def duplicate_groups(findings) -> dict[str, int]:
    """path -> group number: images joined by duplicate findings (which report a spanning tree per group)."""
    parent: dict[str, str] = {}

    def root(node):
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for finding in findings:
        if finding.kind.startswith("duplicate_") and len(finding.paths) == 2:
            parent[root(finding.paths[0])] = root(finding.paths[1])
    roots = sorted({root(node) for node in list(parent)})
    return {node: roots.index(root(node)) for node in list(parent)}


def score(findings, planted: dict) -> dict:
    """How ``findings`` (:class:`tlcore.health.Finding`) match the ``planted`` cases of :func:`plant`:
    duplicates found (the copy in one duplicate group with its original) per transform and scope and in all,
    each planted flip's rank among the likely-mislabelled findings (None: not found), and the findings that
    involve no planted image (false alarms, by kind)."""
    groups = duplicate_groups(findings)
    found = {}
    for case in planted["duplicates"]:
        key = f"{case['transform']}/{case['scope']}"
        hit = case["original"] in groups and groups.get(case["copy"]) == groups[case["original"]]
        found.setdefault(key, [0, 0])
        found[key][0] += hit
        found[key][1] += 1
    mislabelled = [finding for finding in findings if finding.kind == "likely_mislabelled"]
    ranks = {}
    for flip in planted["flips"]:
        rank = next((i + 1 for i, finding in enumerate(mislabelled) if finding.paths[0] == flip["path"]), None)
        ranks[flip["path"]] = rank
    involved = {case[key] for case in planted["duplicates"] for key in ("original", "copy")}
    involved |= {flip["path"] for flip in planted["flips"]}
    alarms: dict[str, int] = {}
    for finding in findings:
        if finding.paths and not set(finding.paths) & involved:
            alarms[finding.kind] = alarms.get(finding.kind, 0) + 1
    hits = sum(hit for hit, _ in found.values())
    total = sum(count for _, count in found.values())
    return {"duplicates_found": hits, "duplicates_planted": total, "duplicate_recall": hits / max(total, 1),
            "by_case": {key: f"{hit}/{count}" for key, (hit, count) in sorted(found.items())},
            "flip_ranks": ranks, "flips_found": sum(rank is not None for rank in ranks.values()),
            "flips_planted": len(ranks), "mislabelled_findings": len(mislabelled), "false_alarms": alarms}


def index(dataset_dir: Path) -> tuple[list[str], dict, dict]:
    """``(class_names, {split: paths}, {split: label ids})`` of a dataset folder (labels.json for the ids)."""
    import numpy as np

    labels = json.loads((Path(dataset_dir) / "labels.json").read_text())
    names: list = [None] * (max(labels.values()) + 1)
    for name, label in labels.items():
        names[label] = name
    paths, ids = {}, {}
    for split in health.SPLITS:
        files = [p for p in images_of(Path(dataset_dir) / split) if p.parent.name in labels]
        paths[split] = [str(p) for p in files]
        ids[split] = np.array([labels[p.parent.name] for p in files], dtype=np.int64)
    return names, paths, ids


class Extractor:
    """MobileNetV2 pooled features, 224 px; ImageNet weights when installed (``real``)."""

    def __init__(self):
        import tensorflow as tf

        weights = Path.home() / ".keras" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
        self.real = weights.is_file()
        self.tf = tf
        self.model = tf.keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False,
                                                       weights="imagenet" if self.real else None, pooling="avg")

    def __call__(self, paths: list[str]):
        import numpy as np

        from tlcore.images import decode

        out = []
        for start in range(0, len(paths), 64):
            batch = np.stack([decode(path, SIZE) for path in paths[start:start + 64]]).astype(np.float32)
            batch = self.tf.keras.applications.mobilenet_v2.preprocess_input(batch)
            out.append(self.model(batch, training=False).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1280), np.float32)


def out_of_fold(features, labels, folds: int = 5, seed: int = 0):
    """Class probabilities of each training image from a logistic regression trained on the other folds."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    classes = int(labels.max()) + 1
    scores = np.full((len(labels), classes), np.nan)
    smallest = np.bincount(labels).min() if len(labels) else 0
    splitter = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)
    for train, test in splitter.split(features, labels):
        scaler = StandardScaler().fit(features[train])
        model = LogisticRegression(max_iter=2000, C=0.1).fit(scaler.transform(features[train]), labels[train])
        scores[np.ix_(test, model.classes_)] = model.predict_proba(scaler.transform(features[test]))
    return np.nan_to_num(scores, nan=0.0)


def examine(dataset_dir: Path, extractor: Extractor):
    """Features, out-of-fold scores and the :class:`tlcore.health.HealthReport` of a dataset folder."""
    names, paths, ids = index(dataset_dir)
    began = time.perf_counter()
    features = {split: extractor(paths[split]) for split in health.SPLITS}
    extracted = time.perf_counter() - began
    oof = out_of_fold(features["training"], ids["training"])
    report = health.check_health(features, ids, paths, names, oof_scores=oof)
    return names, paths, ids, features, oof, report, extracted


def similarity(features, first: str, second: str, paths) -> float:
    """The cosine of two images as :func:`tlcore.health.find_duplicates` sees them (square-rooted, mean-centred,
    normalised; MobileNetV2's pooled features are never negative)."""
    import numpy as np

    everything = np.sqrt(np.concatenate([features[split] for split in health.SPLITS]))
    where = {path: i for i, path in enumerate(paths["training"] + paths["validation"])}
    centred = everything - everything.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    return float(centred[where[first]] @ centred[where[second]])


def most_similar_pairs(features, paths, count: int = 10):
    """The ``count`` most similar pairs of different images (all pairs: for measuring on a small dataset)."""
    import numpy as np

    everything = np.sqrt(np.concatenate([features[split] for split in health.SPLITS]))
    names = paths["training"] + paths["validation"]
    centred = everything - everything.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    matrix = centred @ centred.T
    upper = np.triu_indices(len(names), 1)
    order = np.argsort(-matrix[upper])[:count]
    return [(float(matrix[upper][k]), names[upper[0][k]], names[upper[1][k]]) for k in order]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=None)
    parser.add_argument("--flips", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="where the planted copy goes (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the planted copy")
    args = parser.parse_args(argv)
    dataset = args.dataset or default_dataset()
    work = Path(tempfile.mkdtemp(prefix="tl-health-bench-"))
    out = args.out or work / "planted"
    began = time.perf_counter()
    try:
        extractor = Extractor()
        print(f"dataset: {dataset}")
        print(f"features: MobileNetV2 {SIZE} px, average pooling, "
              + ("ImageNet weights" if extractor.real else "RANDOM weights (ImageNet weights not installed in "
                 "~/.keras/models: these figures mean little)"))
        *_, clean_features, _, clean, seconds = examine(dataset, extractor)
        _, clean_paths, _ = index(dataset)
        counts = {split: len(clean_paths[split]) for split in health.SPLITS}
        print(f"\nclean dataset: {counts} images, features in {seconds:.1f} s, check in "
              f"{clean.checked['seconds']:.2f} s ({clean.checked['pairs_verified']} pairs verified)")
        print(f"  findings on the clean dataset (false alarms, if the dataset is clean): "
              f"{dict(sorted(_kinds(clean.findings).items())) or 'none'}")
        for line in clean.warning_lines():
            print(f"  {line}")
        for finding in clean.findings[:15]:
            print(f"    {finding.kind}: {', '.join(_short(p, dataset) for p in finding.paths) or finding.labels} "
                  f"score {finding.score:.3f}: {finding.detail}")
        print(f"  most similar pairs of different images (threshold {health.DUPLICATE_THRESHOLD}):")
        for value, a, b in most_similar_pairs(clean_features, clean_paths, 8):
            print(f"    {value:.3f}  {_short(a, dataset)}  {_short(b, dataset)}")

        planted = plant(dataset, out, args.seed, flips=args.flips)
        _, paths, _, features, oof, report, seconds = examine(out, extractor)
        result = score(report.findings, planted)
        print(f"\nplanted dataset: {sum(len(paths[s]) for s in health.SPLITS)} images, check in "
              f"{report.checked['seconds']:.2f} s ({report.checked['pairs_verified']} pairs verified)")
        print(f"  duplicates found / planted: {result['duplicates_found']}/{result['duplicates_planted']} "
              f"({result['duplicate_recall']:.0%}; goal >= 90%)")
        for case in planted["duplicates"]:
            value = similarity(features, case["original"], case["copy"], paths)
            groups = duplicate_groups(report.findings)
            hit = case["original"] in groups and groups.get(case["copy"]) == groups[case["original"]]
            print(f"    {case['transform']:>9} {case['scope']:>6}: cosine {value:.3f} {'found' if hit else 'MISSED'}")
        print(f"  label flips found: {result['flips_found']}/{result['flips_planted']} among "
              f"{result['mislabelled_findings']} likely-mislabelled findings; ranks: "
              f"{sorted(rank for rank in result['flip_ranks'].values() if rank) or '-'}"
              + (f", not found: {sum(rank is None for rank in result['flip_ranks'].values())}"
                 if None in result["flip_ranks"].values() else ""))
        print(f"  findings involving no planted image: {result['false_alarms'] or 'none'}")
        for line in report.warning_lines():
            print(f"  {line}")
        print(json.dumps({"clean": _kinds(clean.findings), "planted": {k: v for k, v in result.items()
                                                                          if k != "flip_ranks"},
                          "flip_ranks": sorted(r for r in result["flip_ranks"].values() if r)}, default=str))
        print(f"\ntotal {time.perf_counter() - began:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"planted copy kept in {out}")
    return 0


def _kinds(findings) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    return counts


def _short(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


if __name__ == "__main__":
    sys.exit(main())
