"""Linear probe on ImageNet MobileNetV2 features: how hard is a dataset for transfer learning?

    python bench/probe.py DATASET_DIR [DATASET_DIR ...]        # Top-1 on each folder's validation split
    python bench/probe.py --dataset many --folds 4             # bench/datasets.py's folds: per fold and mean

Features: Keras MobileNetV2 (alpha 1.0, include_top=False, pooling="avg", weights="imagenet",
224x224 input), each image resized whole to 224x224 (no crop), mobilenet_v2.preprocess_input.
Classifier: standardised features, scikit-learn LogisticRegression with C chosen by stratified
cross-validation on the training split only (LogisticRegressionCV), then Top-1 on validation.
The ImageNet weights must be in Keras's cache (~/.keras/models); without them the probe stops with one line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_MODEL = None
_CACHE: dict[str, "object"] = {}


WEIGHTS = Path("~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5").expanduser()


def _model():
    global _MODEL
    if _MODEL is None:
        if not WEIGHTS.is_file():
            raise SystemExit(f"error: no ImageNet MobileNetV2 weights in Keras' cache ({WEIGHTS}): real features are "
                             "needed; run once where Keras can download them, or copy that file there")
        import tensorflow as tf
        _MODEL = tf.keras.applications.MobileNetV2(include_top=False, pooling="avg", weights="imagenet",
                                                   input_shape=(224, 224, 3))
    return _MODEL


def features(paths: list[Path], batch: int = 32, flip: bool = False):
    """Pooled features of the images (cached in memory by file content); ``flip``: of their mirror images."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image
    keys = [hashlib.sha1(p.read_bytes()).hexdigest() + ("-flip" if flip else "") for p in paths]
    todo = [i for i, k in enumerate(keys) if k not in _CACHE]
    for start in range(0, len(todo), batch):
        part = todo[start:start + batch]
        arr = np.stack([np.asarray(Image.open(paths[i]).convert("RGB").resize((224, 224), Image.BILINEAR),
                                   dtype=np.float32) for i in part])
        if flip:
            arr = arr[:, :, ::-1]
        out = _model().predict(tf.keras.applications.mobilenet_v2.preprocess_input(arr), verbose=0)
        for i, f in zip(part, out):
            _CACHE[keys[i]] = f
    return np.stack([_CACHE[k] for k in keys]) if keys else np.zeros((0, 1280), np.float32)


def _split(folder: Path, name: str, labels: dict[str, int]):
    paths, ys = [], []
    for cls in sorted(labels):
        for p in sorted((folder / name / cls).glob("*")):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                paths.append(p)
                ys.append(labels[cls])
    return paths, ys


def probe_top1(dataset_dir, seed: int = 0, max_cv: int = 5) -> float:
    """Top-1 of a standardised-feature logistic regression (C by stratified CV on training) on validation."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    folder = Path(dataset_dir)
    labels = json.loads((folder / "labels.json").read_text())
    tr_paths, y_tr = _split(folder, "training", labels)
    va_paths, y_va = _split(folder, "validation", labels)
    x_tr, x_va = features(tr_paths), features(va_paths)
    y_tr, y_va = np.array(y_tr), np.array(y_va)
    smallest = int(np.bincount(y_tr)[np.unique(y_tr)].min())
    cv = min(max_cv, smallest)
    if cv >= 2:
        clf = LogisticRegressionCV(Cs=np.logspace(-4, 2, 7).tolist(), max_iter=3000,
                                   cv=StratifiedKFold(cv, shuffle=True, random_state=seed))
    else:  # a class with a single training image: no CV possible
        clf = LogisticRegression(C=0.01, max_iter=3000)
    model = make_pipeline(StandardScaler(), clf).fit(x_tr, y_tr)
    return float((model.predict(x_va) == y_va).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="*", type=Path, help="dataset folders (training/, validation/, labels.json)")
    parser.add_argument("--dataset", default="", help="comma-separated names of bench/datasets.py (with --folds)")
    parser.add_argument("--folds", type=int, default=4, help="K of the K-fold split (default 4)")
    parser.add_argument("--root", type=Path, default=None, help="bench/datasets.py's root")
    args = parser.parse_args(argv)
    for d in args.dirs:
        print(f"{d}: Top-1 {probe_top1(d):.3f}")
    if args.dataset:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import datasets
        root = args.root or datasets.DEFAULT_ROOT
        for name in args.dataset.split(","):
            scores = [probe_top1(datasets.folds(name, args.folds, f, root)) for f in range(args.folds)]
            print(f"{name}: mean Top-1 {sum(scores) / len(scores):.3f} over {args.folds} folds "
                  f"({', '.join(f'{s:.3f}' for s in scores)})", flush=True)
    if not args.dirs and not args.dataset:
        parser.error("give dataset folders or --dataset")
    return 0


if __name__ == "__main__":
    sys.exit(main())
