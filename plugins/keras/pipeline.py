"""The tf.data input pipeline shared by training and evaluation.

Images are streamed from disk (parallel decode, resize, batch, optional random
augmentation, scale, prefetch), so memory does not grow with the number of images.
"""

AUGMENTATIONS = ("flip", "rotation", "zoom", "contrast", "brightness")


def decode_with_pillow(path):
    """Pillow's decoding for what TensorFlow's decoders get wrong: EXIF rotation, CMYK, WebP."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path.decode() if isinstance(path, bytes) else path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)


def decode_and_resize(path, pillow, preprocessing):
    """Read one image file: float32 RGB pixels in [0, 255], size x size."""
    import tensorflow as tf

    def with_pillow():
        image = tf.numpy_function(decode_with_pillow, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [None, None, 3])

    def with_tensorflow():
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.ensure_shape(image, [None, None, 3])

    image = tf.cond(pillow, with_pillow, with_tensorflow)
    return tf.image.resize(image, [preprocessing.size, preprocessing.size], method=preprocessing.resize, antialias=True)


def make_augmentation(names, seed=None):
    """A Keras layer stack applying the named random changes to batches of [0, 255] pixels."""
    import tensorflow as tf

    layers = tf.keras.layers
    make = {
        "flip": lambda: layers.RandomFlip("horizontal", seed=seed),
        "rotation": lambda: layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
        "zoom": lambda: layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
        "contrast": lambda: layers.RandomContrast(0.2, seed=seed),
        "brightness": lambda: layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
    }
    return tf.keras.Sequential([make[name]() for name in names], name="augmentation")


def make_dataset(split, preprocessing, batch_size, shuffle=False, seed=None, augment=None, indexed=False):
    """A batched ``tf.data.Dataset`` of ``(model input, label_id)`` for a :class:`tlcore.dataset.Split`.

    An image TensorFlow cannot decode is dropped rather than stopping the run; with
    ``indexed=True`` each element also carries its sample index, so the caller can
    tell which ones were dropped (see :func:`undecodable`).
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((
        split.paths,
        tf.constant(split.label_ids, dtype=tf.int32),
        tf.constant(split.pillow_flags, dtype=tf.bool),
        tf.range(len(split), dtype=tf.int32),
    ))
    if shuffle:
        data = data.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    data = data.map(
        lambda path, label, pillow, index: (decode_and_resize(path, pillow, preprocessing), label, index),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle or seed is not None,  # a seeded run repeats exactly
    ).ignore_errors().batch(batch_size)
    if augment is not None:  # random draws in batch order, so a seeded run repeats exactly
        data = data.map(lambda images, labels, index: (augment(images, training=True), labels, index))
    scale, offset = preprocessing.scale, preprocessing.offset
    if indexed:
        data = data.map(lambda images, labels, index: (images * scale + offset, labels, index),
                        num_parallel_calls=tf.data.AUTOTUNE)
    else:
        data = data.map(lambda images, labels, index: (images * scale + offset, labels),
                        num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def undecodable(split, preprocessing, batch_size=64):
    """Sample indices of ``split`` whose files TensorFlow cannot decode (one decode pass, no model)."""
    seen = set()
    for _, _, index in make_dataset(split, preprocessing, batch_size, indexed=True):
        seen.update(index.numpy().tolist())
    return unseen(split, seen)


def unseen(split, seen):
    """Sample indices of ``split`` not in ``seen``: the ones an indexed pass dropped."""
    return sorted(set(range(len(split))) - seen)


def report_undecodable(split, indices, config, reporter):
    """Warn about (``"bad_images": "skip"``) or stop on (``"error"``) images TensorFlow could not decode."""
    from tlcore.errors import DatasetError

    if not indices:
        return
    paths = [str(split.samples[i][0]) for i in indices]
    if config.options.get("bad_images", "skip") == "error":
        raise DatasetError(
            f"{paths[0]}: TensorFlow cannot decode this image ({len(paths)} such in {split.name}); "
            'remove or replace it, or set "bad_images": "skip"'
        )
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    reporter.warning(f"{split.name}: skipped {len(paths)} image(s) TensorFlow cannot decode: {shown}")


def without(split, indices):
    """``split`` without the samples at ``indices``."""
    import dataclasses

    dropped = set(indices)
    return dataclasses.replace(split, samples=tuple(s for i, s in enumerate(split.samples) if i not in dropped))
