"""Build datasets and configuration files for tests (and the benchmark) without network access."""

import json
import random
from pathlib import Path

TEXTURES = ("brick", "grass", "gravel")


def write_labels(root, labels):
    path = Path(root) / "labels.json"
    path.write_text(json.dumps(labels))
    return path


def write_config(folder, name="configuration.json", **values):
    path = Path(folder) / name
    path.write_text(json.dumps(values, indent=2))
    return path


def solid_jpegs(root, classes, per_class, size=40, seed=0, shift=0.0):
    """``root/<class>/<i>.jpg``: each class a distinct colour with noise (learnable, tiny); ``shift`` moves
    each image's colour by a random amount of that size, so that classes can overlap."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    palette = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 220, 50), (200, 60, 200), (60, 210, 210)]
    for index, name in enumerate(classes):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.array(palette[index % len(palette)], dtype=np.float32) + rng.normal(0, shift, 3) * (shift > 0)
            pixels = np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{name}_{i}.jpg", quality=90)
    return Path(root)


def texture_dataset(root, train_per_class=12, val_per_class=6, crop=64, seed=0):
    """A 3-class dataset (brick, grass, gravel) of random crops from scikit-image's CC0 textures.

    Training and validation crops come from different halves of each texture, so
    validation images were never seen during training.
    """
    import numpy as np
    from PIL import Image
    from skimage import data

    rng = random.Random(seed)
    root = Path(root)
    for name in TEXTURES:
        texture = np.asarray(getattr(data, name)())
        if texture.ndim == 2:
            texture = np.stack([texture] * 3, axis=-1)
        height, width = texture.shape[:2]
        halves = {"training": (0, height // 2), "validation": (height // 2, height)}
        for split, count in (("training", train_per_class), ("validation", val_per_class)):
            top, bottom = halves[split]
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                y = rng.randrange(top, bottom - crop)
                x = rng.randrange(0, width - crop)
                Image.fromarray(texture[y:y + crop, x:x + crop]).save(folder / f"{name}_{i}.jpg", quality=92)
    write_labels(root, {name: index for index, name in enumerate(TEXTURES)})
    return root


TINY_MOBILENET = {"weights": None, "mobilenet_alpha": 0.35}
"""The smallest MobileNetV2 there is, with random weights: for tests of plumbing, not of learning."""


def colour_project(root, train_per_class=3, val_per_class=1, size=32, **config):
    """A two-class (red, green) project in ``root``: data/{training,validation,labels.json} and
    configuration.json for a tiny MobileNetV2 run; ``config`` overrides its values. Returns the
    configuration's path."""
    root = Path(root)
    if not (root / "data" / "labels.json").exists():  # written once; later calls only rewrite the configuration
        solid_jpegs(root / "data" / "training", ["red", "green"], per_class=train_per_class, size=size)
        solid_jpegs(root / "data" / "validation", ["red", "green"], per_class=val_per_class, size=size, seed=1)
        write_labels(root / "data", {"red": 0, "green": 1})
    values = {
        "dataset_training_dir": "data/training", "dataset_validation_dir": "data/validation",
        "output_dir": "out", "evaluate_result_dir": "out", "batch_size": 2, "input_tensor_size": size,
        "epochs": 1, **TINY_MOBILENET, **config,
    }
    return write_config(root, **values)
