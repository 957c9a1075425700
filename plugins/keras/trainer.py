"""The Keras trainer: a new softmax head on the frozen feature extractor."""

from tlcore.config import ConfigKey
from tlcore.hookspecs import hookimpl

from plugins.keras.pipeline import make_dataset


@hookimpl
def tl_config_keys():
    return [
        ConfigKey("learning_rate", "number", default=0.001, minimum=1e-8, maximum=10.0,
                  help="Adam learning rate of the new head"),
        ConfigKey("dropout", "number", default=0.2, minimum=0.0, maximum=0.9,
                  help="dropout before the new head"),
        ConfigKey("seed", "integer", default=None, nullable=True, minimum=0,
                  help="random seed for head initialisation and shuffling; null = different every run"),
    ]


def build_classifier(extractor, num_outputs, size, dropout):
    """Image -> frozen extractor (inference mode) -> pooling -> dropout -> softmax over label ids."""
    import tensorflow as tf

    extractor.trainable = False
    inputs = tf.keras.Input(shape=(size, size, 3), name="image")
    features = extractor(inputs, training=False)
    if len(features.shape) == 4:
        features = tf.keras.layers.GlobalAveragePooling2D(name="pool")(features)
    elif len(features.shape) != 2:
        features = tf.keras.layers.Flatten(name="flatten")(features)
    if dropout:
        features = tf.keras.layers.Dropout(dropout, name="dropout")(features)
    outputs = tf.keras.layers.Dense(num_outputs, activation="softmax", name="predictions")(features)
    return tf.keras.Model(inputs, outputs, name="tl_classifier")


def progress_callback(reporter, events, epochs, batch_size, num_train, num_validation):
    """Keras callback printing ``Epoch i/n``, live progress, and the epoch's metrics."""
    import tensorflow as tf

    class EpochProgress(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = self.val_seen = 0
            self.bar = self.val_bar = None

        def on_epoch_begin(self, epoch, logs=None):
            reporter.info(f"Epoch {epoch + 1}/{epochs}")
            events.epoch_start(epoch + 1)
            self.seen = 0
            self.bar = reporter.progress(num_train, unit="img")

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.seen = min(num_train, self.seen + batch_size)
            self.bar.update(self.seen, **{k: logs[k] for k in ("loss", "acc") if k in logs})

        def on_test_begin(self, logs=None):
            self.val_seen = 0
            self.val_bar = reporter.progress(num_validation, label="validation ", unit="img")

        def on_test_batch_end(self, batch, logs=None):
            self.val_seen = min(num_validation, self.val_seen + batch_size)
            self.val_bar.update(self.val_seen)

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            self.bar.done = num_train
            self.bar.finish(**{k: logs[k] for k in ("loss", "acc", "val_loss", "val_acc") if k in logs})
            events.epoch_end(epoch + 1, logs)

    return EpochProgress()


@hookimpl(trylast=True)
def tl_train(model, dataset, preprocessing, config, reporter, events):
    import tensorflow as tf

    seed = config.options["seed"]
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    classifier = build_classifier(model, dataset.num_outputs, preprocessing.size, config.options["dropout"])
    classifier.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=config.options["learning_rate"]),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )
    training = make_dataset(dataset.training, preprocessing, config.batch_size, shuffle=True, seed=seed)
    validation = make_dataset(dataset.validation, preprocessing, config.batch_size)
    callback = progress_callback(
        reporter, events, config.epochs, config.batch_size, len(dataset.training), len(dataset.validation)
    )
    reporter.info(
        f"Training a {dataset.num_outputs}-way head on frozen {model.name}: "
        f"{config.epochs} epoch{'s' if config.epochs > 1 else ''}, batch size {config.batch_size}"
    )
    classifier.fit(training, validation_data=validation, epochs=config.epochs, verbose=0, callbacks=[callback])
    return classifier

