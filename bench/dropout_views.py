"""Can the head's dropout and its training views be chosen by cross-validation inside the training images?

    python bench/dropout_views.py                      # the four datasets, 4 folds each: about 5 minutes
    python bench/dropout_views.py --only small,many

On each fold of bench/datasets.py's datasets, with real ImageNet MobileNetV2 features (bench/probe.py's: the
image resized whole to 224 px, and its mirror image as a second view), every combination of dropout (0, 0.2,
0.5) and views (the image only; the image and its mirror image, one per epoch) gets tl's head search as a run
does it (tlcore.head_search: the 18 settings of its grid, up to 40 epochs, stratified folds of the training
images), and the head it chooses is trained on all training images and measured on the validation images.
Printed per dataset: validation Top-1 and cross-validated accuracy inside training, the mean over the folds,
for each combination, and what choosing the combination by that cross-validation (per fold) would score.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from bench import datasets  # noqa: E402 - after the repository is on the path
from bench.probe import _split, features  # noqa: E402

DROPOUTS = (0.0, 0.2, 0.5)
VIEWS = (1, 2)
FOLDS = 4
SEED, BATCH = 0, 32


def final_head(x, y, classes, settings, epochs, dropout):
    """The chosen head trained on all training images, as the packs train it (one view per image and epoch)."""
    import numpy as np

    from tlcore.head_search import HeadBatch
    from tlcore.sampling import epoch_order, view_choice

    heads = HeadBatch([settings], x.shape[2], classes, SEED, None, dropout)
    for epoch in range(epochs):
        order = epoch_order(len(x), SEED, epoch + 1)
        view_of = view_choice(len(x), x.shape[1], SEED, epoch + 1)
        for start in range(0, len(x), BATCH):
            rows = np.sort(order[start:start + BATCH])
            heads.train(np.asarray(x[rows, 0 if view_of is None else view_of[rows]], dtype=np.float32), y[rows])
    return heads


def run_fold(name: str, fold: int) -> list[dict]:
    import json

    import numpy as np

    from tlcore.head_search import GRID, MAX_EPOCHS, Settings, cross_validate, fold_count, stratified_folds

    folder = datasets.folds(name, FOLDS, fold)
    labels = json.loads((folder / "labels.json").read_text())
    train_paths, train_labels = _split(folder, "training", labels)
    val_paths, val_labels = _split(folder, "validation", labels)
    x = np.stack([features(train_paths), features(train_paths, flip=True)], axis=1)
    y, yv = np.asarray(train_labels), np.asarray(val_labels)
    xv = features(val_paths)
    classes = max(labels.values()) + 1
    grid = [Settings(*combination) for combination in itertools.product(*(GRID[key] for key in GRID))]
    fold_of = stratified_folds(y, fold_count(y), SEED)
    rows = []
    for dropout, views in itertools.product(DROPOUTS, VIEWS):
        cv = cross_validate(x[:, :views], y, classes, grid, fold_of, epochs=MAX_EPOCHS, batch_size=BATCH, seed=SEED,
                            dropout=dropout)
        accuracy = cv["correct"] / len(y)
        best = max((accuracy[i, e], -cv["loss"][i, e], i, e) for i in range(len(grid)) for e in range(MAX_EPOCHS))
        heads = final_head(x[:, :views], y, classes, grid[best[2]], best[3] + 1, dropout)
        top1 = float((heads.scores(xv.astype(np.float32))[:, 0].argmax(axis=1) == yv).mean())
        rows.append({"dataset": name, "fold": fold, "dropout": dropout, "views": views, "cv": float(best[0]),
                     "top1": top1, "images": len(yv)})
    return rows


def main(argv=None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"datasets, comma-separated (default all: {', '.join(datasets.DATASETS)})")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(datasets.DATASETS)
    combos = list(itertools.product(DROPOUTS, VIEWS))
    print("Validation Top-1 / cross-validated accuracy inside training, %, mean over the folds")
    print(f"{'dataset':<11}" + "".join(f"  dropout {d} views {v}" for d, v in combos) + "   chosen by the CV")
    everything = []
    for name in names:
        rows = [row for fold in range(FOLDS) for row in run_fold(name, fold)]
        everything += rows
        cells = []
        for dropout, views in combos:
            mine = [row for row in rows if (row["dropout"], row["views"]) == (dropout, views)]
            cells.append(f"{100 * np.mean([r['top1'] for r in mine]):9.1f} / {100 * np.mean([r['cv'] for r in mine]):5.1f}")
        chosen = [max((row for row in rows if row["fold"] == fold),
                      key=lambda row: (round(row["cv"], 6), row["dropout"] == 0.2, row["views"] == 1))
                  for fold in range(FOLDS)]
        print(f"{name:<11}" + "".join(cells) + f"   {100 * np.mean([r['top1'] for r in chosen]):5.1f}", flush=True)
    print("\nValidation images right, all datasets and folds:")
    for dropout, views in combos:
        right = sum(round(r["top1"] * r["images"]) for r in everything if (r["dropout"], r["views"]) == (dropout, views))
        print(f"  dropout {dropout}, views {views}: {right} of {sum(r['images'] for r in everything) // len(combos)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
