"""The Keras trainer: a new softmax head on the frozen feature extractor.

With a frozen base and no augmentation, features are computed once per image and
the head trains on them (:mod:`plugins.keras.features`); otherwise images stream
through the whole model every epoch.
"""

from dataclasses import dataclass

from tlcore.config import ConfigKey
from tlcore.hookspecs import hookimpl
from tlcore.outputs import require_free_space

from plugins.keras.pipeline import (
    AUGMENTATIONS, make_augmentation, make_dataset, report_undecodable, undecodable, without,
)


@hookimpl
def tl_config_keys():
    return [
        ConfigKey("learning_rate", "number", default=0.001, minimum=1e-8, maximum=10.0,
                  help="Adam learning rate of the new head"),
        ConfigKey("dropout", "number", default=0.2, minimum=0.0, maximum=0.9,
                  help="dropout before the new head"),
        ConfigKey("augmentation", "list", default=(), convert=_augmentation,
                  help=f"random changes to training images, any of {', '.join(AUGMENTATIONS)}"),
        ConfigKey("fine_tune_layers", "integer", default=0, minimum=0,
                  help="also train the last N layers of the base (BatchNorm stays frozen); 0 = frozen base"),
        ConfigKey("feature_cache", "string", default="auto", choices=("auto", "memory", "disk", "off"),
                  help="frozen base without augmentation: compute features once, in memory or on disk "
                       "(auto: memory when small); off = run the base every epoch"),
    ]


def _augmentation(value, base_dir):
    import difflib

    for item in value:
        if item not in AUGMENTATIONS:
            close = difflib.get_close_matches(str(item), AUGMENTATIONS, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise ValueError(f"has {item!r}; {hint}use any of {', '.join(AUGMENTATIONS)}")
    return tuple(dict.fromkeys(value))


@dataclass
class Classifier:
    """The full model and two views sharing its layers: image -> features, features -> scores."""

    model: object
    features: object
    head: object


def build_classifier(extractor, num_outputs, size, dropout, fine_tune_layers=0):
    """Image -> extractor (inference mode) -> pooling -> dropout -> softmax over label ids."""
    import tensorflow as tf

    extractor.trainable = fine_tune_layers > 0
    for layer in extractor.layers[:len(extractor.layers) - fine_tune_layers]:
        layer.trainable = False
    inputs = tf.keras.Input(shape=(size, size, 3), name="image")
    features = extractor(inputs, training=False)
    if len(features.shape) == 4:
        features = tf.keras.layers.GlobalAveragePooling2D(name="pool")(features)
    elif len(features.shape) != 2:
        features = tf.keras.layers.Flatten(name="flatten")(features)
    head_layers = [tf.keras.layers.Dropout(dropout, name="dropout")] if dropout else []
    head_layers.append(tf.keras.layers.Dense(num_outputs, activation="softmax", name="predictions"))

    def head(tensor):
        for layer in head_layers:
            tensor = layer(tensor)
        return tensor

    feature_input = tf.keras.Input(shape=(features.shape[-1],), name="features")
    return Classifier(
        model=tf.keras.Model(inputs, head(features), name="tl_classifier"),
        features=tf.keras.Model(inputs, features, name="tl_features"),
        head=tf.keras.Model(feature_input, head(feature_input), name="tl_head"),
    )


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


def compile_for_training(model, learning_rate):
    import tensorflow as tf

    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )


@hookimpl(trylast=True)
def tl_train(model, dataset, preprocessing, config, reporter, events):
    import tensorflow as tf

    from plugins.keras.features import feature_arrays, feature_batches

    options = config.options
    seed = config.seed
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    classifier = build_classifier(
        model, dataset.num_outputs, preprocessing.size, options["dropout"], options["fine_tune_layers"]
    )
    require_free_space(config.output_dir, classifier.model.count_params() * 4 + 16 * 2**20, "the SavedModel")
    cached = options["feature_cache"] != "off" and not options["augmentation"] and not options["fine_tune_layers"]
    tuned = min(options["fine_tune_layers"], len(model.layers))
    base = "frozen" if not tuned else (
        f"all {tuned} layers trainable of" if tuned == len(model.layers) else f"last {tuned} layers trainable of")
    epochs = f"{config.epochs} epoch{'s' if config.epochs > 1 else ''}"
    if cached:
        arrays = feature_arrays(classifier.features, dataset, preprocessing, config, reporter, options["feature_cache"])
        trained = classifier.head
        training = feature_batches(*arrays["training"], config.batch_size, shuffle=True, seed=seed)
        validation = feature_batches(*arrays["validation"], config.batch_size)
    else:
        trained = classifier.model
        augment = make_augmentation(options["augmentation"], seed) if options["augmentation"] else None
        with reporter.activity("Checking that every training image decodes"):
            bad = undecodable(dataset.training, preprocessing)
        report_undecodable(dataset.training, bad, config, reporter)
        training = make_dataset(without(dataset.training, bad), preprocessing, config.batch_size, shuffle=True,
                                seed=seed, augment=augment)
        validation = make_dataset(dataset.validation, preprocessing, config.batch_size)
    compile_for_training(trained, options["learning_rate"])
    reporter.info(
        f"Training a {dataset.num_outputs}-way head on {base} {model.name}: {epochs}, batch size {config.batch_size}"
        + (", on features computed once" if cached else "")
        + (f", augmentation: {', '.join(options['augmentation'])}" if options["augmentation"] else "")
    )
    callback = progress_callback(
        reporter, events, config.epochs, config.batch_size, len(dataset.training), len(dataset.validation)
    )
    trained.fit(training, validation_data=validation, epochs=config.epochs, verbose=0, callbacks=[callback])
    return classifier.model
