"""The benchmark's sections beyond wall time and memory: decoding large photos, and Top-1 on small real datasets.

Used by bench/benchmark.py (``--only decode`` and ``--only accuracy``); each function returns table rows
``(figure, tl, reference, unit, better, note)``.

Decode: tl's feature-extraction throughput (images/s, as its progress line reports it) on small JPEGs
and on 12-megapixel (4000x3000) ones, one epoch; the reference's first-epoch throughput on the same
images (image_dataset_from_directory decodes every JPEG at full size, then resizes).

Accuracy: mean Top-1 over stratified k-fold splits (the training and validation images of a dataset
pooled per class, fold i validates, the others train) and seeds, tl at its default settings against
the reference recipe, the same folds, base and epochs for both. Nothing is tuned on the folds.
"""

import json
import os
import random
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"^features of (training|validation) images.*? (\d+)/\d+ \[=+\] - ([\d.]+) img/s", re.M)


def make_photos(root, count, classes=4, size=(4000, 3000), seed=0):
    """``count`` photo-like JPEGs of ``size`` (80 % training, 20 % validation): smooth colour fields with
    edges and fine grain, so that they compress like camera photos (a few MB each)."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    if (root / "labels.json").exists():
        return root
    rng = np.random.default_rng(seed)
    width, height = size
    for index in range(count):
        label = index % classes
        split = "validation" if (index // classes) % 5 == 4 else "training"
        small = rng.normal(110 + 25 * label, 45, (height // 100, width // 100, 3)).clip(0, 255).astype("uint8")
        image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
        grain = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
        pixels = (np.asarray(image, dtype=np.int16) + grain).clip(0, 255).astype("uint8")
        folder = root / split / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=90)
    (root / "labels.json").write_text(json.dumps({f"class_{i}": i for i in range(classes)}))
    return root


def extraction_rate(output):
    """Images per second of tl's feature extraction (both splits), from its progress lines."""
    seconds = images = 0.0
    for _, done, rate in PROGRESS.findall(output):
        images += int(done)
        seconds += int(done) / float(rate)
    return images / seconds if seconds else float("nan")


def decode_rows(base, args, workdir, run_tl, write_config, run_reference, make_dataset):
    """tl's and the reference's throughput on small and on 12-megapixel JPEGs of the same number."""
    count = 100 if args.quick else 200
    small = make_dataset(workdir / f"small-{count}", count, classes=4)
    photos = make_photos(workdir / f"photos12mp-{count}", count)
    rates = {}
    for name, dataset in (("small", small), ("12 MP", photos)):
        print(f"[decode] {count} {name} JPEGs: tl ...", flush=True)
        result = run_tl(write_config(workdir / f"decode-{name.replace(' ', '')}", dataset, base, args, epochs=1,
                                     augmentation_views=0), workdir)
        tl_rate = extraction_rate(result["stdout"])
        print("[decode] ... and the reference", flush=True)
        reference = run_reference(base, dataset, args, workdir, 1)
        rates[name] = (tl_rate, count / reference["epoch_seconds"][0])
    (tl_small, ref_small), (tl_big, ref_big) = rates["small"], rates["12 MP"]
    return [
        (f"extraction img/s, {count} small JPEGs", tl_small, ref_small, "img/s", "higher", None),
        (f"extraction img/s, {count} 12 MP JPEGs", tl_big, ref_big, "img/s", "higher", None),
        ("12 MP / small throughput (goal tl >= 0.7)", tl_big / tl_small, ref_big / ref_small, "x", "higher", None),
    ]


def pooled(source):
    """``{class: [image paths]}`` of a dataset's training and validation folders together."""
    images = {}
    for split in ("training", "validation"):
        for path in sorted(Path(source, split).glob("*/*")):
            images.setdefault(path.parent.name, []).append(path)
    return images


def fold(images, labels, index, folds, root):
    """Fold ``index`` of ``folds`` in ``root`` (hard links): every ``folds``-th image of a class (in a
    seeded order) validates, the rest train."""
    shutil.rmtree(root, ignore_errors=True)
    for name, paths in images.items():
        paths = list(paths)
        random.Random(0).shuffle(paths)
        for position, path in enumerate(paths):
            split = "validation" if position % folds == index else "training"
            folder = Path(root, split, name)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{path.parent.parent.name}-{path.name}"
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
    Path(root, "labels.json").write_text(json.dumps(labels))
    return Path(root)


def accuracy_rows(base, args, workdir, run_tl, write_config, run_reference, datasets, small):
    """Mean Top-1 of tl (defaults) and the reference over folds x seeds on each of ``datasets``
    (``{name: folder}``); ``small`` names those of 50 images per class or fewer (goal: +2 points)."""
    folds, seeds = (2, 1) if args.quick else (4, 2)
    rows = []
    for name, source in datasets.items():
        labels = json.loads(Path(source, "labels.json").read_text())
        images = pooled(source)
        tl, reference = [], []
        for index in range(folds):
            data = fold(images, labels, index, folds, workdir / f"fold-{name}")
            for seed in range(seeds):
                print(f"[accuracy] {name}, fold {index + 1}/{folds}, seed {seed}: tl and the reference", flush=True)
                config = write_config(workdir / f"accuracy-{name}", data, base, args, seed=seed)
                tl.append(run_tl(config, workdir)["top_1_accuracy"])
                reference.append(run_reference(base, data, args, workdir, args.epochs)["top_1_accuracy"])
        tl_mean, ref_mean = sum(tl) / len(tl), sum(reference) / len(reference)
        goal = "goal tl >= reference + 0.02" if name in small else "goal tl >= reference"
        rows.append((f"Top-1 {name}, mean of {len(tl)} ({goal})", tl_mean, ref_mean, "", "higher", None))
    return rows


def texture_source(workdir):
    """scikit-image's brick, grass and gravel textures: 50 crops of 64 px per class (CC0)."""
    import sys

    sys.path.insert(0, str(REPO))
    from tests.builders import texture_dataset

    root = Path(workdir) / "textures"
    if not (root / "labels.json").exists():
        texture_dataset(root, train_per_class=40, val_per_class=10, crop=64)
    return root
