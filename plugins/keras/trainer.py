"""The Keras trainer: a new softmax head on the feature extractor.

The training policy is the core's (:func:`tlcore.training.fit`: cached features,
hold-out and early stopping, phases, schedule, class weights, epoch lines); this
module builds the classifier and gives the core its steps as a
:class:`tlcore.training.Trainable`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from tlcore.hookspecs import hookimpl
from tlcore.outputs import require_free_space
from tlcore.sampling import sample_uniform
from tlcore.training import StepResult, fit

from tlplugins.keras.distributed import local_part, local_replicas, scope, strategy
from tlplugins.keras.framework import inference
from tlplugins.keras.saved_model import float32_model

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.distributed import Cluster
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter
    from tlcore.training import RunEvents

TL_FRAMEWORK = "keras"


@dataclass
class Classifier:
    """The full model and two views sharing its layers: image -> features, features -> scores."""

    model: object
    features: object
    head: object


def build_classifier(extractor: Any, num_outputs: int, size: int, dropout: float) -> Any:
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

    def head(tensor: Any) -> Any:
        for layer in head_layers:
            tensor = layer(tensor)
        return tensor

    feature_input = tf.keras.Input(shape=(features.shape[-1],), name="features")
    return Classifier(
        model=tf.keras.Model(inputs, head(features), name="tl_classifier"),
        features=tf.keras.Model(inputs, features, name="tl_features"),
        head=tf.keras.Model(feature_input, head(feature_input), name="tl_head"),
    )


def model_key(model: Any) -> Any:
    """A hash of ``model``'s architecture and weights: the feature cache is reused only while it holds."""
    digest = hashlib.sha256(model.to_json().encode())
    for weight in model.weights:
        digest.update(weight.numpy().tobytes())
    return "keras:" + digest.hexdigest()


class KerasSteps:
    """The training and test steps of one phase: on features (``cached``) only the head trains, else images go
    through the whole classifier (its base in inference mode).

    Dropout is drawn from each image's key (:func:`tlcore.sampling.sample_uniform`), so an image gets the same
    dropout whichever worker, or batch, has it. With a strategy (several workers, or several local devices),
    each step runs in it (``strategy.run``), each device on its part of this worker's batch: the loss is the
    device's share of the batch's mean (its part's sum over the whole batch's size), ``apply_gradients`` adds the
    gradients up over every device, and the devices' losses and counts are added up for this worker.
    """

    def __init__(self, classifier: Any, cached: bool, learning_rate: float, class_weights: Any, dim: int,
                 cluster: Cluster, label_smoothing: float = 0.0, weight_decay: float = 0.0) -> None:
        import tensorflow as tf

        self.model = classifier.head if cached else classifier.model
        self.dim = dim
        self.cluster = cluster
        self.rate = classifier.head.get_layer("dropout").rate if _has_layer(classifier.head, "dropout") else 0.0
        predictions = classifier.head.get_layer("predictions")
        features = None if cached else classifier.features
        mixed = tf.keras.mixed_precision.global_policy().name.startswith("mixed")
        with scope():
            optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
            self.optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer) if mixed else optimizer
        self._rate_variable = optimizer.learning_rate
        loss_of = tf.keras.losses.SparseCategoricalCrossentropy(reduction=tf.keras.losses.Reduction.NONE)
        weights = tf.constant(class_weights if class_weights is not None else [1.0], dtype=tf.float32)
        weighted = class_weights is not None
        model, keep = self.model, 1.0 - self.rate
        distributed, replicas = strategy(), local_replicas(cluster.size)
        image = tf.TensorSpec((None, *self.model.input_shape[1:]), tf.float32)
        label, mask = tf.TensorSpec((None,), tf.int64), tf.TensorSpec((None, dim), tf.float32)

        def part(*tensors: Any) -> Any:
            """This replica's part of the batch and the mask of its real rows (all of them without a strategy)."""
            if distributed is None:
                return (*tensors, tf.ones(tf.shape(tensors[0])[:1], tf.float32))
            return local_part(tensors, replicas)

        classes = predictions.units

        def loss_per_image(labels: Any, scores: Any) -> Any:
            if not label_smoothing:
                return loss_of(labels, scores)
            # (1 - e) * cross-entropy + e * the mean over classes of -log p, as tl's head search trains
            log_scores = tf.math.log(tf.clip_by_value(tf.cast(scores, tf.float32), 1e-7, 1.0))
            picked = tf.gather(log_scores, labels, axis=1, batch_dims=1)
            return -(1.0 - label_smoothing) * picked - label_smoothing * tf.reduce_sum(log_scores, axis=1) / classes

        def sums(labels: Any, scores: Any, real: Any) -> Any:
            """The part's summed (weighted) loss, the batch's size over every replica, and the part's number
            correct, over its ``real`` rows."""
            per = loss_per_image(labels, scores) * real
            if weighted:
                per = per * tf.gather(weights, labels)
            count = tf.reduce_sum(real)
            if distributed is not None:
                count = tf.distribute.get_replica_context().all_reduce("SUM", count)
            hits = tf.cast(tf.equal(tf.argmax(scores, axis=-1), labels), tf.float32) * real
            return tf.reduce_sum(per), tf.maximum(count, 1.0), tf.cast(tf.reduce_sum(hits), tf.int32)

        def train_replica(images: Any, labels: Any, kept: Any) -> Any:
            images, labels, kept, real = part(images, labels, kept)
            with tf.GradientTape() as tape:
                inputs = images if features is None else features(images, training=True)
                scores = predictions(inputs * tf.cast(kept / keep, inputs.dtype))
                total, count, right = sums(labels, scores, real)
                loss = total / count
                scaled = self.optimizer.get_scaled_loss(loss) if mixed else loss
            variables = model.trainable_variables
            gradients = tape.gradient(scaled, variables)
            if mixed:
                gradients = self.optimizer.get_unscaled_gradients(gradients)
            if weight_decay:  # L2 on the head's kernel, added to its gradient (Adam's coupled weight decay)
                gradients = [gradient + weight_decay * variable if variable is predictions.kernel else gradient
                             for gradient, variable in zip(gradients, variables, strict=True)]
            self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return loss, right

        def test_replica(images: Any, labels: Any) -> Any:
            images, labels, real = part(images, labels)
            total, count, right = sums(labels, model(images, training=False), real)
            return total / count, right

        def run(replica: Callable[..., Any]) -> Any:
            if distributed is None:
                return replica

            def spread(*args: Any) -> Any:
                results = distributed.run(replica, args=args)
                return tuple(tf.add_n(distributed.experimental_local_results(value)) for value in results)

            return spread

        self._train = tf.function(run(train_replica), input_signature=[image, label, mask])
        self._test = tf.function(run(test_replica), input_signature=[image, label])

    def _mask(self, count: int, keys: Any) -> Any:
        import numpy as np

        if not self.rate:
            return np.ones((count, self.dim), dtype=np.float32)
        if keys is None:  # a caller without per-image keys: dropout drawn afresh
            uniform = np.random.default_rng().random((count, self.dim), dtype=np.float32)
        else:
            uniform = sample_uniform(keys, self.dim)
        return (uniform >= self.rate).astype(np.float32)

    def train(self, images: Any, labels: Any, keys: Any = None) -> Any:
        return self._guarded(self._train, images, labels, self._mask(len(labels), keys))  # keys: per-image dropout

    def test(self, images: Any, labels: Any) -> Any:
        return self._guarded(self._test, images, labels)

    def _guarded(self, step: Any, *args: Any) -> Any:
        if self.cluster.size == 1:
            loss, right = step(*args)
            return StepResult(float(loss.numpy()), float(right.numpy()))
        import tensorflow as tf

        try:
            loss, right = step(*args)
            return StepResult(float(loss.numpy()), float(right.numpy()))
        except tf.errors.OpError as exc:  # a collective failed: another worker is gone or too slow
            raise self.cluster.lost("training step", exc) from None

    def set_learning_rate(self, rate: float) -> None:
        self._rate_variable.assign(rate)

    def snapshot(self) -> Any:
        return self.model.get_weights()

    def restore(self, state: Any) -> None:
        self.model.set_weights(state)

    def state(self) -> Any:
        """Weights and optimizer state (step count, Adam's moments), for a checkpoint: a resumed run goes on
        exactly."""
        return {"weights": self.snapshot(), "optimizer": [variable.numpy() for variable in self.optimizer.variables]}

    def load_state(self, state: Any) -> None:
        self.restore(state["weights"])
        if state["optimizer"]:
            with scope():
                self.optimizer.build(self.model.trainable_variables)
            for variable, value in zip(self.optimizer.variables, state["optimizer"], strict=True):
                variable.assign(value)


def _in_replica(model: Any, cluster: Cluster) -> Any:
    """``model`` in inference mode, run by the strategy, each of this worker's devices on its part of the batch:
    in a replica, reading BatchNorm's statistics takes no collective, so workers may extract different numbers of
    batches."""
    import tensorflow as tf

    distributed, replicas = strategy(), local_replicas(cluster.size)

    def call(images: Any) -> Any:
        result = distributed.run(lambda batch: model(local_part((batch,), replicas)[0], training=False),
                                 args=(images,))
        # the parts in replica order, then the padding (a batch smaller than the replicas): cut off
        return tf.concat(distributed.experimental_local_results(result), axis=0)[:tf.shape(images)[0]]

    return tf.function(call, input_signature=[tf.TensorSpec(model.inputs[0].shape, tf.float32)])


def _has_layer(model: Any, name: str) -> Any:
    return any(layer.name == name for layer in model.layers)


class KerasTrainable:
    """The Keras classifier as the core's training policy sees it (:class:`tlcore.training.Trainable`)."""

    def __init__(self, extractor: Any, classifier: Any, cluster: Cluster) -> None:
        self.extractor = extractor
        self.classifier = classifier
        self.cluster = cluster
        self.dim = int(classifier.features.output_shape[-1])
        self.name = extractor.name
        self.layers = len(extractor.layers)

        self._features = inference(classifier.features) if strategy() is None else _in_replica(classifier.features,
                                                                                                cluster)

    def features(self, images: Any) -> Any:
        return self._features(images).numpy().astype("float32", copy=False)  # float16 with mixed precision

    def head_scores(self, features: Any) -> Any:
        return inference(self.classifier.head)(features).numpy()

    def model_key(self) -> Any:
        return model_key(self.classifier.features)

    def freeze(self, layers: int) -> None:
        self.extractor.trainable = layers > 0
        for index, layer in enumerate(self.extractor.layers):
            layer.trainable = index >= len(self.extractor.layers) - layers if layers else False

    def steps(self, cached: bool, learning_rate: float, class_weights: Any, *, label_smoothing: float = 0.0,
              weight_decay: float = 0.0) -> Any:
        return KerasSteps(self.classifier, cached, learning_rate, class_weights, self.dim, self.cluster,
                          label_smoothing, weight_decay)


@hookimpl(trylast=True)
def tl_train(model: Any, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig, reporter: Reporter,
             events: RunEvents) -> Any:
    import tensorflow as tf

    if config.seed is not None:
        tf.keras.utils.set_random_seed(config.seed)
    with scope():
        classifier = build_classifier(model, dataset.num_outputs, preprocessing.size, config.dropout)
    if events.cluster.size > 1:  # every worker starts from the chief's weights (a seedless random head differs)
        classifier.model.set_weights(events.cluster.broadcast(classifier.model.get_weights()))
    if events.cluster.chief:  # the chief saves the model
        require_free_space(config.output_dir, classifier.model.count_params() * 4 + 16 * 2**20, "the SavedModel")
    fit(KerasTrainable(model, classifier, events.cluster), dataset, preprocessing, config, reporter, events)
    if strategy() is not None:  # a plain copy (made by every worker together): the chief saves it on its own

        return float32_model(classifier.model)
    return classifier.model
