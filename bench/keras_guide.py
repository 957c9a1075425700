"""The Keras transfer-learning guide's recipe (keras.io/guides/transfer_learning, and TensorFlow's
"Transfer learning and fine-tuning" tutorial with MobileNetV2): a reference tl is measured against.

Two phases on image_dataset_from_directory's batches, with the guide's augmentation (random horizontal
flip and rotation by up to 0.1 turn) on the training images:
1. the base frozen (called with training=False) + pooling + Dropout(0.2) + Dense softmax head, Adam(1e-3)
   for EPOCHS epochs;
2. the base's layers from --fine-tune-at (100, the tutorial's, for MobileNetV2's 155) on unfrozen,
   BatchNorm kept in inference mode (the base is still called with training=False), recompiled with
   Adam(1e-5), FINE_TUNE_EPOCHS more epochs.
Then Top-1 and balanced accuracy (mean per-class recall) on the validation folder. Every epoch forwards every image through the base (no feature
caching), as the guide does. Prints one JSON line: wall time, per-epoch seconds of both phases, Top-1,
balanced accuracy.

    python bench/keras_guide.py BASE_MODEL.h5 DATASET_DIR SIZE EPOCHS FINE_TUNE_EPOCHS BATCH [--seed N]
    python bench/keras_guide.py imagenet DATASET_DIR SIZE EPOCHS FINE_TUNE_EPOCHS BATCH --imagenet [--seed N]

--seed N (default 0) seeds Keras (Python, NumPy and TensorFlow: the head's initial weights, dropout,
augmentation) and the training set's shuffling. --imagenet: Keras's MobileNetV2 1.0 with ImageNet
weights instead of a saved base (bench/reference.py's load_base). --no-augment leaves the images as they are.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.reference import epoch_timer  # noqa: E402


def main(base_path, dataset, size, epochs, fine_tune_epochs, batch_size, seed=0, imagenet=False, fine_tune_at=100,
         augment=True):
    import numpy as np
    import tensorflow as tf

    from bench.reference import folder_datasets, load_base

    started = time.monotonic()
    tf.keras.utils.set_random_seed(seed)
    class_names, training, validation = folder_datasets(dataset, size, batch_size, seed)
    scale = tf.keras.layers.Rescaling(1 / 127.5, offset=-1)
    if augment:
        augmentation = tf.keras.Sequential([tf.keras.layers.RandomFlip("horizontal", seed=seed),
                                            tf.keras.layers.RandomRotation(0.1, seed=seed)])
        training = training.map(lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    training = training.map(lambda x, y: (scale(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    validation = validation.map(lambda x, y: (scale(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)

    base = load_base(base_path, size, imagenet)
    base.trainable = False
    inputs = tf.keras.Input((size, size, 3))
    features = tf.keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    outputs = tf.keras.layers.Dense(len(class_names), activation="softmax")(tf.keras.layers.Dropout(0.2)(features))
    model = tf.keras.Model(inputs, outputs)

    epoch_seconds = []

    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["acc"])
    model.fit(training, epochs=epochs, verbose=0, callbacks=[epoch_timer(epoch_seconds)])
    if fine_tune_epochs:
        base.trainable = True
        for layer in base.layers[:fine_tune_at]:
            layer.trainable = False
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                      metrics=["acc"])
        model.fit(training, epochs=fine_tune_epochs, verbose=0, callbacks=[epoch_timer(epoch_seconds)])
    truth = np.concatenate([y.numpy() for _, y in validation])
    predicted = model.predict(validation, verbose=0).argmax(axis=1)
    recalls = [float((predicted[truth == label] == label).mean()) for label in np.unique(truth)]
    print(json.dumps({"wall_seconds": time.monotonic() - started, "epoch_seconds": epoch_seconds,
                      "trainable_base_layers": sum(layer.trainable for layer in base.layers) if fine_tune_epochs else 0,
                      "top_1_accuracy": float((predicted == truth).mean()),
                      "balanced_accuracy": float(np.mean(recalls))}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("dataset")
    parser.add_argument("size", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("fine_tune_epochs", type=int)
    parser.add_argument("batch_size", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--imagenet", action="store_true")
    parser.add_argument("--fine-tune-at", type=int, default=100)
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    args = parser.parse_args()
    main(args.base, args.dataset, args.size, args.epochs, args.fine_tune_epochs, args.batch_size, args.seed,
         args.imagenet, args.fine_tune_at, args.augment)
