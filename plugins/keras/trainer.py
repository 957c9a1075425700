"""The Keras trainer: a new softmax head on the feature extractor.

With a frozen base and no augmentation, the core computes each image's features
once and the head trains on them (:func:`tlcore.training.training_data`);
otherwise images stream through the whole model every epoch. The epoch loop,
progress and events are the core's; this module only builds the model and its
training step.
"""

import hashlib
from dataclasses import dataclass

from tlcore.hookspecs import hookimpl
from tlcore.outputs import require_free_space
from tlcore.training import TrainingLoop, announce_training, run_epochs, run_seed, training_data

from plugins.keras.framework import inference

TL_FRAMEWORK = "keras"


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


def model_key(model):
    """A hash of ``model``'s architecture and weights: the feature cache is reused only while it holds."""
    digest = hashlib.sha256(model.to_json().encode())
    for weight in model.weights:
        digest.update(weight.numpy().tobytes())
    return "keras:" + digest.hexdigest()


def training_steps(model, learning_rate):
    """``(train_step, test_step)``: each takes a batch (numpy) and returns ``(mean loss, number correct)``."""
    import tensorflow as tf

    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    loss_of = tf.keras.losses.SparseCategoricalCrossentropy()
    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int64)]

    def correct(labels, scores):
        return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(scores, axis=-1), labels), tf.int32))

    @tf.function(input_signature=signature)
    def train(images, labels):
        with tf.GradientTape() as tape:
            scores = model(images, training=True)
            loss = loss_of(labels, scores)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss, correct(labels, scores)

    @tf.function(input_signature=signature)
    def test(images, labels):
        scores = model(images, training=False)
        return loss_of(labels, scores), correct(labels, scores)

    def numpy(step):
        return lambda images, labels: tuple(value.numpy() for value in step(images, labels))

    return numpy(train), numpy(test)


@hookimpl(trylast=True)
def tl_train(model, dataset, preprocessing, config, reporter, events):
    import tensorflow as tf

    seed = run_seed(config)
    if config.seed is not None:
        tf.keras.utils.set_random_seed(config.seed)
    classifier = build_classifier(model, dataset.num_outputs, preprocessing.size, config.dropout,
                                  config.fine_tune_layers)
    require_free_space(config.output_dir, classifier.model.count_params() * 4 + 16 * 2**20, "the SavedModel")
    compute = inference(classifier.features)
    data = training_data(
        dataset, preprocessing, config, reporter, seed,
        compute=lambda images: compute(images).numpy(), dim=int(classifier.features.output_shape[-1]),
        model_key=lambda: model_key(classifier.features),
    )
    trained = classifier.head if data.cached else classifier.model
    train_step, test_step = training_steps(trained, config.learning_rate)
    announce_training(reporter, config, dataset.num_outputs, model.name, len(model.layers), data.cached)
    loop = TrainingLoop(reporter, events, config.epochs, data.num_train, data.num_validation)
    run_epochs(loop, data.training, data.validation, train_step, test_step)
    return classifier.model
