"""The plain-Keras way, as a tutorial does it: the reference tl is measured against.

image_dataset_from_directory + the same frozen base + pooling + Dense softmax head +
model.fit for N epochs, saved as a SavedModel, then Top-1 on the validation folder. Prints one JSON line:
wall time, per-epoch seconds, Top-1.

    python bench/reference.py BASE_MODEL.h5 DATASET_DIR SIZE EPOCHS BATCH [--augment] [--seed N]
    python bench/reference.py BASE_MODEL.h5 DATASET_DIR SIZE 1 BATCH --extract
    python bench/reference.py imagenet DATASET_DIR SIZE EPOCHS BATCH --imagenet [--seed N]

--seed N (default 0) seeds Keras (tf.keras.utils.set_random_seed: Python, NumPy and TensorFlow, so the
head's initial weights, dropout and flips) and the training set's shuffling.

--imagenet: the base is Keras's MobileNetV2 (alpha 1.0, no top) with its ImageNet weights, built with
tf.keras.applications as the SDK notebook does, instead of a saved model (BASE is then not read).

--extract measures feature extraction instead of training, as a tutorial computes features:
base + global average pooling, model.predict over the training folder (which also builds and warms
up the model), then model.predict over the validation folder, timed: ``extract_images_per_second``
is the validation images over those seconds (decoding at full size, resizing and the forward pass).
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_base(base_path, size, imagenet=False):
    """The frozen base: the saved model at ``base_path``, or with ``imagenet`` Keras's MobileNetV2 1.0 with
    ImageNet weights."""
    import tensorflow as tf

    if imagenet:
        return tf.keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights="imagenet")
    return tf.keras.models.load_model(base_path, compile=False)


def epoch_timer(seconds):
    """A Keras callback that appends each epoch's duration to ``seconds``."""
    import tensorflow as tf

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.monotonic() - self.start)

    return Timer()


def folder_datasets(dataset, size, batch_size, seed):
    """The SDK notebook's input pipeline: ``(class names by id, training, validation)``, tf.data datasets of the
    dataset folder's splits from ``image_dataset_from_directory`` (training shuffled by ``seed``)."""
    import tensorflow as tf

    labels = json.load(open(os.path.join(dataset, "labels.json")))
    class_names = sorted(labels, key=labels.get)
    common = dict(image_size=(size, size), batch_size=batch_size, label_mode="int", class_names=class_names)
    training = tf.keras.utils.image_dataset_from_directory(os.path.join(dataset, "training"), shuffle=True,
                                                           seed=seed, **common)
    validation = tf.keras.utils.image_dataset_from_directory(os.path.join(dataset, "validation"), shuffle=False, **common)
    return class_names, training, validation


def main(base_path, dataset, size, epochs, batch_size, augment=False, seed=0, extract=False, imagenet=False):
    out_dir = tempfile.mkdtemp(prefix="tl-bench-reference-")
    import tensorflow as tf

    started = time.monotonic()
    tf.keras.utils.set_random_seed(seed)
    class_names, training, validation = folder_datasets(dataset, size, batch_size, seed)
    scale = tf.keras.layers.Rescaling(1 / 127.5, offset=-1)
    if augment:
        flip = tf.keras.layers.RandomFlip("horizontal", seed=seed)
        training = training.map(lambda x, y: (flip(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    count = len(validation.file_paths)
    training = training.map(lambda x, y: (scale(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    validation = validation.map(lambda x, y: (scale(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    base = load_base(base_path, size, imagenet)
    base.trainable = False
    inputs = tf.keras.Input((size, size, 3))
    features = tf.keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    if extract:
        extractor = tf.keras.Model(inputs, features)
        extractor.predict(training, verbose=0)
        extract_started = time.monotonic()
        extractor.predict(validation, verbose=0)
        seconds = time.monotonic() - extract_started
        print(json.dumps({"wall_seconds": time.monotonic() - started, "extract_seconds": seconds,
                          "extract_images": count, "extract_images_per_second": count / seconds}))
        return
    outputs = tf.keras.layers.Dense(len(class_names), activation="softmax")(tf.keras.layers.Dropout(0.2)(features))
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["acc"])

    epoch_seconds = []

    model.fit(training, validation_data=validation, epochs=epochs, verbose=0, callbacks=[epoch_timer(epoch_seconds)])
    model.save(os.path.join(out_dir, "saved_model"), save_format="tf", include_optimizer=False)
    _, top1 = model.evaluate(validation, verbose=0)
    print(json.dumps({"wall_seconds": time.monotonic() - started, "epoch_seconds": epoch_seconds,
                      "top_1_accuracy": float(top1)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("dataset")
    parser.add_argument("size", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("batch_size", type=int)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extract", action="store_true")
    parser.add_argument("--imagenet", action="store_true")
    args = parser.parse_args()
    main(args.base, args.dataset, args.size, args.epochs, args.batch_size, args.augment, args.seed, args.extract,
         args.imagenet)
