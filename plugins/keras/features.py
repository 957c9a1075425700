"""Frozen-base training at the cost of one pass over the images.

When the base is frozen and images are not randomly augmented, the base computes
the same features for an image in every epoch. So each image's (pooled) features
are computed once, and the head is trained on them for all epochs. They are kept
in memory when small, otherwise in an on-disk cache under ``output_dir/.tl-cache``
that is reused only while the model weights, input size, preprocessing and image
files are unchanged; a cache for anything else is removed.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

from tlcore.outputs import StagedDir, require_free_space

from plugins.keras.pipeline import make_dataset, report_undecodable, unseen

MEMORY_LIMIT_BYTES = 256 * 2**20
"""Features of both splits up to this size stay in memory ("feature_cache": "auto")."""

CACHE_FOLDER = ".tl-cache"
COMPLETE = "complete.json"
SPLITS = ("training", "validation")


def fingerprint(features_model, preprocessing, dataset):
    """A hash of everything the features depend on: weights, architecture, preprocessing, files."""
    digest = hashlib.sha256()
    digest.update(features_model.to_json().encode())
    for weight in features_model.weights:
        digest.update(weight.numpy().tobytes())
    digest.update(json.dumps(preprocessing.to_dict(), sort_keys=True).encode())
    for name in SPLITS:
        for path, label in getattr(dataset, name).samples:
            stat = os.stat(path)
            digest.update(f"{name}\0{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def compiled(model):
    """``model`` in inference mode as one graph for any batch size (traced once, not per batch shape)."""
    import tensorflow as tf

    return tf.function(lambda images: model(images, training=False),
                       input_signature=[tf.TensorSpec(model.inputs[0].shape, tf.float32)])


def extract(compute, split, preprocessing, batch_size, out, reporter):
    """Fill the rows of ``out`` (n x dim) with ``compute``'s features of ``split``'s images.

    Returns the indices of images TensorFlow could not decode (their rows stay unset).
    """
    bar = reporter.progress(len(split), label=f"features of {split.name} images ", unit="img")
    seen = set()
    for images, _, index in make_dataset(split, preprocessing, batch_size, indexed=True):
        index = index.numpy()
        out[index] = compute(images).numpy()
        seen.update(index.tolist())
        bar.update(len(seen))
    bar.finish()
    return unseen(split, seen)


def feature_arrays(features_model, dataset, preprocessing, config, reporter, mode="auto"):
    """``{split: (features, label_ids, rows)}``: numpy arrays (in memory or memory-mapped)
    and the rows to use (images TensorFlow could not decode are left out and reported)."""
    import numpy as np

    dim = int(features_model.output_shape[-1])
    labels = {name: np.asarray(getattr(dataset, name).label_ids, dtype=np.int32) for name in SPLITS}
    size = sum(len(getattr(dataset, name)) for name in SPLITS) * dim * 4
    batch_size = max(config.batch_size, 32)
    compute = compiled(features_model)
    if mode == "memory" or (mode == "auto" and size <= MEMORY_LIMIT_BYTES):
        reporter.info(f"Computing features once per image ({dim} values each, {size / 2**20:.1f} MiB in memory)")
        arrays, bad = {}, {}
        for name in SPLITS:
            split = getattr(dataset, name)
            arrays[name] = np.zeros((len(split), dim), dtype=np.float32)
            bad[name] = extract(compute, split, preprocessing, batch_size, arrays[name], reporter)
            report_undecodable(split, bad[name], config, reporter)
        return {name: (arrays[name], labels[name], _rows(len(labels[name]), bad[name])) for name in SPLITS}

    root = Path(config.output_dir) / CACHE_FOLDER
    root.mkdir(exist_ok=True)
    key = fingerprint(features_model, preprocessing, dataset)
    folder = root / f"features-{key}"
    for stale in root.glob("features-*"):
        if stale != folder and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    if (folder / COMPLETE).is_file():
        reporter.info(f"Features: reusing the cache {folder} (model, preprocessing and images unchanged)")
        bad = json.loads((folder / COMPLETE).read_text())["undecodable"]
        for name in SPLITS:
            report_undecodable(getattr(dataset, name), bad[name], config, reporter)
    else:
        require_free_space(root, size + 2**20, "the feature cache")
        reporter.info(f"Computing features once per image into {folder} ({size / 2**20:.1f} MiB on disk)")
        bad = {}
        with StagedDir(folder) as staged:
            for name in SPLITS:
                split = getattr(dataset, name)
                out = np.lib.format.open_memmap(staged.path / f"{name}.npy", mode="w+", dtype=np.float32,
                                                shape=(len(split), dim))
                bad[name] = extract(compute, split, preprocessing, batch_size, out, reporter)
                out.flush()
                del out
                report_undecodable(split, bad[name], config, reporter)
            (staged.path / COMPLETE).write_text(json.dumps({"dim": dim, "undecodable": bad}))
            staged.publish()
    return {
        name: (np.load(folder / f"{name}.npy", mmap_mode="r"), labels[name], _rows(len(labels[name]), bad[name]))
        for name in SPLITS
    }


def _rows(count, bad):
    import numpy as np

    return np.setdiff1d(np.arange(count, dtype=np.int64), np.asarray(bad, dtype=np.int64))


def feature_batches(features, labels, rows, batch_size, shuffle=False, seed=None):
    """A ``tf.data.Dataset`` of ``(features, label)`` batches of the given ``rows``, read by index.

    Reading rows by index (not ``from_tensor_slices``) keeps a memory-mapped cache on disk.
    """
    import numpy as np
    import tensorflow as tf

    dim = features.shape[1]

    def gather(indices):
        order = np.sort(indices)
        return np.asarray(features[order], dtype=np.float32), labels[order]

    def load(indices):
        batch, ids = tf.numpy_function(gather, [indices], (tf.float32, tf.int32))
        batch.set_shape([None, dim])
        ids.set_shape([None])
        return batch, ids

    data = tf.data.Dataset.from_tensor_slices(rows)
    if shuffle:
        data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
