"""The Keras trainer: a new softmax head on the feature extractor.

The training policy is the core's (:func:`tlcore.training.fit`: cached features,
hold-out and early stopping, phases, schedule, class weights, epoch lines); this
module builds the classifier and gives the core its steps as a
:class:`tlcore.training.Trainable`.
"""

import hashlib
from dataclasses import dataclass

from tlcore.hookspecs import hookimpl
from tlcore.outputs import require_free_space
from tlcore.training import fit

from plugins.keras.framework import inference

TL_FRAMEWORK = "keras"


@dataclass
class Classifier:
    """The full model and two views sharing its layers: image -> features, features -> scores."""

    model: object
    features: object
    head: object


def build_classifier(extractor, num_outputs, size, dropout):
    """Image -> extractor (inference mode) -> pooling -> dropout -> softmax over label ids."""
    import tensorflow as tf

    inputs = tf.keras.Input(shape=(size, size, 3), name="image")
    features = extractor(inputs, training=False)
    if len(features.shape) == 4:
        features = tf.keras.layers.GlobalAveragePooling2D(name="pool")(features)
    elif len(features.shape) != 2:
        features = tf.keras.layers.Flatten(name="flatten")(features)
    head_layers = [tf.keras.layers.Dropout(dropout, name="dropout")] if dropout else []
    # float32 scores even with mixed precision: a float16 softmax loses small probabilities
    head_layers.append(tf.keras.layers.Dense(num_outputs, activation="softmax", name="predictions", dtype="float32"))

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


class KerasSteps:
    """The training and test steps of one phase: ``model`` is the head (on features) or the whole classifier."""

    def __init__(self, model, learning_rate, class_weights):
        import tensorflow as tf

        self.model = model
        self.optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
        loss_of = tf.keras.losses.SparseCategoricalCrossentropy()
        weights = tf.constant(class_weights if class_weights is not None else [1.0], dtype=tf.float32)
        weighted = class_weights is not None
        signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int64)]

        def correct(labels, scores):
            return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(scores, axis=-1), labels), tf.int32))

        def loss(labels, scores):
            return loss_of(labels, scores, sample_weight=tf.gather(weights, labels) if weighted else None)

        @tf.function(input_signature=signature)
        def train(images, labels):
            with tf.GradientTape() as tape:
                scores = model(images, training=True)
                value = loss(labels, scores)
            gradients = tape.gradient(value, model.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return value, correct(labels, scores)

        @tf.function(input_signature=signature)
        def test(images, labels):
            scores = model(images, training=False)
            return loss(labels, scores), correct(labels, scores)

        self._train, self._test = train, test

    def train(self, images, labels):
        return tuple(value.numpy() for value in self._train(images, labels))

    def test(self, images, labels):
        return tuple(value.numpy() for value in self._test(images, labels))

    def set_learning_rate(self, rate):
        self.optimizer.learning_rate.assign(rate)

    def snapshot(self):
        return self.model.get_weights()

    def restore(self, state):
        self.model.set_weights(state)

    def state(self):
        """Weights and optimizer state (step count, Adam's moments), for a checkpoint: a resumed run goes on
        exactly."""
        return {"weights": self.snapshot(), "optimizer": [variable.numpy() for variable in self.optimizer.variables]}

    def load_state(self, state):
        self.restore(state["weights"])
        if state["optimizer"]:
            self.optimizer.build(self.model.trainable_variables)
            for variable, value in zip(self.optimizer.variables, state["optimizer"], strict=True):
                variable.assign(value)


class KerasTrainable:
    """The Keras classifier as the core's training policy sees it (:class:`tlcore.training.Trainable`)."""

    def __init__(self, extractor, classifier):
        self.extractor = extractor
        self.classifier = classifier
        self.dim = int(classifier.features.output_shape[-1])
        self.name = extractor.name
        self.layers = len(extractor.layers)
        self._features = inference(classifier.features)

    def features(self, images):
        return self._features(images).numpy().astype("float32", copy=False)  # float16 with mixed precision

    def head_scores(self, features):
        return inference(self.classifier.head)(features).numpy()

    def model_key(self):
        return model_key(self.classifier.features)

    def freeze(self, layers):
        self.extractor.trainable = layers > 0
        for index, layer in enumerate(self.extractor.layers):
            layer.trainable = index >= len(self.extractor.layers) - layers if layers else False

    def steps(self, cached, learning_rate, class_weights):
        return KerasSteps(self.classifier.head if cached else self.classifier.model, learning_rate, class_weights)


@hookimpl(trylast=True)
def tl_train(model, dataset, preprocessing, config, reporter, events):
    import tensorflow as tf

    if config.seed is not None:
        tf.keras.utils.set_random_seed(config.seed)
    classifier = build_classifier(model, dataset.num_outputs, preprocessing.size, config.dropout)
    require_free_space(config.output_dir, classifier.model.count_params() * 4 + 16 * 2**20, "the SavedModel")
    fit(KerasTrainable(model, classifier), dataset, preprocessing, config, reporter, events)
    return classifier.model
