"""The benchmark's sections beyond wall time and memory: decoding large photos, and Top-1 on small real datasets.

Used by bench/benchmark.py (``--only decode`` and ``--only accuracy``, keras only); each function returns
table rows (bench/table.py).

Decode: feature-extraction throughput (images/s) on small JPEGs (256x256) and on 12-megapixel ones
(4000x3000, quality 90, about 4 MB each), generated alike (a coarse random colour field, upscaled, with
fine grain). Each dataset has a few training images (which also build and warm up the model) and more
validation images, whose extraction is the figure: for tl, the rate on its "features of validation
images" progress line in a one-epoch `tl run` (tlcore.loader.ImageBatches with tlcore.images.decode and
the base, the code path of every run; no augmented views); for the reference, model.predict of
image_dataset_from_directory + the base + pooling over the validation folder (bench/reference.py
--extract), which decodes every JPEG at full size, then resizes.

Accuracy: mean Top-1 of tl at its default settings (only the dataset, output, base model, input size,
batch size, epochs and seed keys set) against the reference recipe (no augmentation), the same base,
epochs, images and seeds for both. Per dataset:
- the generated stripes (250 images, 5 classes): the images pooled per class, stratified k-fold;
- scikit-image's brick, grass and gravel textures (tests/builders.py texture_dataset: 40 training and
  100 validation crops of 64 px per class): one dataset per seed (other crops), no folds, because
  training crops come from one half of each texture and validation crops from the other, and pooling
  would put overlapping crops on both sides;
- the example photographs (examples/photos/dataset, 4 classes, 20-29 training and 7-10 validation
  images each): training and validation pooled per class, 4 stratified folds (fold i validates, the
  other three train), repeated with other shuffles for more seeds.
Nothing is tuned on the validation images.
"""

import json
import os
import random
import re
import shutil
import statistics
from pathlib import Path

from bench.table import Row

REPO = Path(__file__).resolve().parent.parent
VALIDATION_RATE = re.compile(r"^features of validation images.*? \d+/\d+ \[=+\] - ([\d.,]+) img/s", re.MULTILINE)
VIEWS = re.compile(r"(\d+) augmented views? \(([^)]*)\)")
PHOTO_GOAL = 0.7
"""Goal: tl's 12-megapixel extraction rate at least this fraction of its small-JPEG rate."""
POINTS_GOAL = 2.0
"""Goal: on the small datasets, tl's mean Top-1 at least this many points above the reference's."""


def make_photos(root, train_per_class, val_per_class, size=(4000, 3000), classes=4, seed=0):
    """Photo-like JPEGs of ``size`` (width, height), quality 90: a coarse random colour field (40x30 cells,
    brighter per class) upscaled bicubically, plus fine grain, so that 12-megapixel ones compress like
    camera photos (about 4 MB each)."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    if (root / "labels.json").exists():
        return root
    rng = np.random.default_rng(seed)
    width, height = size
    index = 0
    for label in range(classes):
        for split, count in (("training", train_per_class), ("validation", val_per_class)):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                coarse = rng.normal(110 + 25 * label, 45, (30, 40, 3)).clip(0, 255).astype("uint8")
                image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
                grain = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
                pixels = (np.asarray(image, dtype=np.int16) + grain).clip(0, 255).astype("uint8")
                Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=90)
                index += 1
    (root / "labels.json").write_text(json.dumps({f"class_{i}": i for i in range(classes)}))
    return root


def validation_rate(output):
    """tl's feature-extraction rate (images/s) on the validation images, from its progress line."""
    matches = VALIDATION_RATE.findall(output)
    if not matches:
        return float("nan")
    return float(matches[-1].replace(",", ""))


def decode_rows(base, args, workdir, run_tl, write_config, run_reference):
    """tl's and the reference's extraction throughput on small and on 12-megapixel JPEGs."""
    train, val = 8, (16 if args.quick else 32)
    classes = 4
    count = classes * val
    rates = {}
    for name, size in (("small", (256, 256)), ("12 MP", (4000, 3000))):
        label = name.replace(" ", "")
        print(f"[decode] {classes * (train + val)} {name} JPEGs ({size[0]}x{size[1]}) ...", flush=True)
        dataset = make_photos(workdir / f"photos-{label}-{train}-{val}", train, val, size, classes)
        print("[decode] ... tl", flush=True)
        result = run_tl(write_config(workdir / f"decode-{label}", dataset, base, args, epochs=1,
                                     augmentation_views=0), workdir)
        print("[decode] ... and the reference", flush=True)
        reference = run_reference(base, dataset, args, workdir, 1, extract=True)
        rates[name] = (validation_rate(result["stdout"]), reference["extract_images_per_second"])
    mebibytes = statistics.mean(path.stat().st_size for path in (workdir / f"photos-12MP-{train}-{val}").rglob("*.jpg"))
    (tl_small, ref_small), (tl_big, ref_big) = rates["small"], rates["12 MP"]
    return [
        Row(f"extraction img/s, {count} small JPEGs (256x256)", tl_small, ref_small, "img/s", "higher"),
        Row(f"extraction img/s, {count} 12 MP JPEGs (4000x3000, {mebibytes / 2**20:.1f} MiB)", tl_big, ref_big,
            "img/s", "higher"),
        Row("extraction 12 MP / small JPEGs, each program's own", tl_big / tl_small, ref_big / ref_small, "x",
            "higher", versus=None, goal=f"tl >= {PHOTO_GOAL}", check=lambda row: row.tl >= PHOTO_GOAL),
    ]


def pooled(source):
    """``{class: [image paths]}`` of a dataset's training and validation folders together."""
    images = {}
    for split in ("training", "validation"):
        for path in sorted(Path(source, split).glob("*/*")):
            images.setdefault(path.parent.name, []).append(path)
    return images


def fold(images, labels, index, folds, shuffle, root):
    """Fold ``index`` of ``folds`` in ``root`` (hard links): after shuffling each class's images with the
    seed ``shuffle``, every ``folds``-th image of a class validates, the rest train."""
    shutil.rmtree(root, ignore_errors=True)
    for name, paths in images.items():
        paths = list(paths)
        random.Random(shuffle).shuffle(paths)
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


def k_fold(source, folds, seeds, workdir, name):
    """``[(dataset, seed)]``: ``folds`` stratified folds of ``source``'s pooled images, shuffled anew per seed."""
    labels = json.loads(Path(source, "labels.json").read_text())
    images = pooled(source)
    return [(fold(images, labels, index, folds, seed, workdir / f"fold-{name}-{seed}-{index}"), seed)
            for seed in range(seeds) for index in range(folds)]


def textures(workdir, seed):
    """scikit-image's brick, grass and gravel textures: 40 training and 100 validation crops of 64 px per
    class, other crops for another ``seed`` (CC0)."""
    import sys

    sys.path.insert(0, str(REPO))
    from tests.builders import texture_dataset

    root = Path(workdir) / f"textures-{seed}"
    if not (root / "labels.json").exists():
        shutil.rmtree(root, ignore_errors=True)
        texture_dataset(root, train_per_class=40, val_per_class=100, crop=64, seed=seed)
    return root


def accuracy_plans(workdir, quick, make_dataset):
    """``(name, small, how, [(dataset, seed)])`` of each accuracy dataset; ``small``: 50 training images per
    class or fewer, where the goal is +2 points."""
    stripes = make_dataset(workdir / "data-250", 250)
    photos = REPO / "examples" / "photos" / "dataset"
    stripe_folds, texture_seeds, photo_seeds = (2, 2, 1) if quick else (4, 4, 2)
    return [
        ("stripes", False, f"{stripe_folds}-fold", k_fold(stripes, stripe_folds, 1, workdir, "stripes")),
        ("textures", True, "seeds", [(textures(workdir, seed), seed) for seed in range(texture_seeds)]),
        ("example photos", True, "4-fold" + (f" x {photo_seeds} shuffles" if photo_seeds > 1 else ""),
         k_fold(photos, 4, photo_seeds, workdir, "photos")),
    ]


def accuracy_rows(base, args, workdir, run_tl, write_config, run_reference, make_dataset):
    """Mean Top-1 of tl (default settings) and of the reference on each dataset of :func:`accuracy_plans`."""
    rows = []
    for name, small, how, runs in accuracy_plans(workdir, args.quick, make_dataset):
        tl, reference, views = [], [], set()
        for number, (dataset, seed) in enumerate(runs):
            print(f"[accuracy] {name} ({how}), run {number + 1}/{len(runs)}, seed {seed}: tl and the reference",
                  flush=True)
            config = write_config(workdir / f"accuracy-{name.replace(' ', '-')}-{number}", dataset, base, args,
                                  seed=seed)
            result = run_tl(config, workdir)
            tl.append(result["top_1_accuracy"])
            match = VIEWS.search(result["stdout"])
            views.add(f"{match.group(1)} (of {match.group(2)})" if match else "0")
            reference.append(run_reference(base, dataset, args, workdir, args.epochs, seed=seed)["top_1_accuracy"])
        tl_mean, ref_mean = statistics.mean(tl), statistics.mean(reference)
        minimum = POINTS_GOAL if small else 0.0
        rows.append(Row(
            f"Top-1 {name}, mean of {len(tl)} runs ({how})", tl_mean, ref_mean, "", "higher", versus="points",
            note=f"tl {' '.join(f'{value:.3f}' for value in tl)}; reference "
                 f"{' '.join(f'{value:.3f}' for value in reference)}; tl's augmentation views: {', '.join(sorted(views))}",
            goal=f"tl - reference >= {minimum:+.0f} pts",
            check=lambda row, minimum=minimum: row.comparison >= minimum - 1e-9))
    return rows
