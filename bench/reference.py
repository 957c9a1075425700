"""The plain-Keras way, as a tutorial does it: the reference tl is measured against.

image_dataset_from_directory + the same frozen base + pooling + Dense softmax head +
model.fit for N epochs, saved as a SavedModel, then Top-1 on the validation folder. Prints one JSON line:
wall time, per-epoch seconds, Top-1.

    python bench/reference.py BASE_MODEL.h5 DATASET_DIR SIZE EPOCHS BATCH [--augment]
"""

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(base_path, dataset, size, epochs, batch_size, augment=False):
    out_dir = tempfile.mkdtemp(prefix="tl-bench-reference-")
    import tensorflow as tf

    started = time.monotonic()
    labels = json.load(open(os.path.join(dataset, "labels.json")))
    class_names = sorted(labels, key=labels.get)
    common = dict(image_size=(size, size), batch_size=batch_size, label_mode="int", class_names=class_names)
    training = tf.keras.utils.image_dataset_from_directory(os.path.join(dataset, "training"), shuffle=True, **common)
    validation = tf.keras.utils.image_dataset_from_directory(os.path.join(dataset, "validation"), shuffle=False, **common)
    scale = tf.keras.layers.Rescaling(1 / 127.5, offset=-1)
    if augment:
        flip = tf.keras.layers.RandomFlip("horizontal")
        training = training.map(lambda x, y: (flip(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    training = training.map(lambda x, y: (scale(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    validation = validation.map(lambda x, y: (scale(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    base = tf.keras.models.load_model(base_path, compile=False)
    base.trainable = False
    inputs = tf.keras.Input((size, size, 3))
    features = tf.keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    outputs = tf.keras.layers.Dense(len(class_names), activation="softmax")(tf.keras.layers.Dropout(0.2)(features))
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["acc"])

    epoch_seconds = []

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.monotonic() - self.start)

    model.fit(training, validation_data=validation, epochs=epochs, verbose=0, callbacks=[Timer()])
    model.save(os.path.join(out_dir, "saved_model"), save_format="tf", include_optimizer=False)
    _, top1 = model.evaluate(validation, verbose=0)
    print(json.dumps({"wall_seconds": time.monotonic() - started, "epoch_seconds": epoch_seconds,
                      "top_1_accuracy": float(top1)}))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), augment="--augment" in args)
