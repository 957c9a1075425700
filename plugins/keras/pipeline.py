"""The tf.data input pipeline shared by training and evaluation.

Images are streamed from disk (parallel decode, resize, scale, batch, prefetch),
so memory does not grow with the number of images.
"""


def decode_and_preprocess(path, preprocessing):
    """Read one image file and return the model input for it (float32, size x size x 3)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=preprocessing.channels, expand_animations=False)
    image = tf.image.resize(image, [preprocessing.size, preprocessing.size], method=preprocessing.resize, antialias=True)
    return image * preprocessing.scale + preprocessing.offset


def make_dataset(split, preprocessing, batch_size, shuffle=False, seed=None):
    """A batched ``tf.data.Dataset`` of ``(image, label_id)`` for a :class:`tlcore.dataset.Split`."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((split.paths, tf.constant(split.label_ids, dtype=tf.int32)))
    if shuffle:
        data = data.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    data = data.map(
        lambda path, label: (decode_and_preprocess(path, preprocessing), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)

