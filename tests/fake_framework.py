"""A complete framework pack in a page of numpy: the nearest mean colour.

The minimal example of docs/writing-a-plugin.md ("Writing a framework pack"), and
the stand-in for TensorFlow in tl's own tests: load it with
``tl run -p tests.fake_framework`` and set ``"framework": "fake"``. The "base
model" averages each image's colour; the "head" keeps one centroid per label id,
which each training image pulls towards itself by the learning rate; prediction
scores each image by its distance to every centroid. Quantizing rounds the
centroids to whole pixel values, for raw 0-255 input as a device gives it.
"""

import json
import os
import time

from tlcore.frameworks import Framework
from tlcore.hookspecs import hookimpl
from tlcore.training import StepResult, fit

TL_FRAMEWORK = "fake"
FAR = 1e3
"""Where a centroid starts: far from every image."""


@hookimpl
def tl_frameworks():
    return [Framework(
        name="fake",
        summary="nearest mean colour (pure numpy; tl's tests and docs)",
        keys=("feature_cache", "augmentation_views", "preprocessing", "learning_rate", "early_stopping_patience",
              "early_stopping_monitor", "holdout_fraction", "learning_rate_schedule", "warmup_epochs", "class_weight"),
        default_preprocessing="unit",
        model_format="model.json: one mean colour per label id",
    )]


@hookimpl
def tl_load_base_model(reporter):
    reporter.info("Base model: mean colour")
    return {"name": "mean-colour", "layers": ["mean", "top"]}


@hookimpl
def tl_remove_top_layer(model, reporter):
    reporter.info("Top layers removed: top (Fake)")
    return {**model, "layers": model["layers"][:-1]}


def mean_colour(images):
    """A batch of NHWC model input -> its mean colour per image (n x 3)."""
    return images.mean(axis=(1, 2))


def scores(centroids, features):
    """Softmax over minus the distance to each centroid."""
    import numpy as np

    distance = np.linalg.norm(features[:, None, :] - centroids[None, :, :], axis=2)
    logits = -10 * distance
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


class MeanColour:
    """The classifier as the core's training policy sees it (a :class:`tlcore.training.Trainable`)."""

    dim, name, layers = 3, "mean-colour", 1

    def __init__(self, num_outputs):
        import numpy as np

        self.centroids = np.full((num_outputs, 3), FAR)

    def features(self, images):
        return mean_colour(images)

    def head_scores(self, features):
        return scores(self.centroids, features)

    def model_key(self):
        return "mean-colour"

    def freeze(self, layers):
        pass  # nothing in a mean to fine-tune

    def steps(self, cached, learning_rate, class_weights):
        return CentroidSteps(self.centroids, cached, learning_rate, class_weights)


class CentroidSteps:
    """One training phase: each image pulls its class's centroid towards itself (the first one places it)."""

    def __init__(self, centroids, cached, learning_rate, class_weights):
        self.centroids, self.cached, self.rate, self.weights = centroids, cached, learning_rate, class_weights

    def measure(self, inputs, labels):
        """The batch's mean cross-entropy and number correct, and its features."""
        import numpy as np

        features = inputs if self.cached else mean_colour(inputs)
        predicted = scores(self.centroids, features)
        loss = -np.log(predicted[np.arange(len(labels)), labels] + 1e-7).mean()
        return StepResult(float(loss), int((predicted.argmax(axis=1) == labels).sum())), features

    def train(self, inputs, labels, keys=None):  # no randomness: the images' keys are not needed
        result, features = self.measure(inputs, labels)
        for feature, label in zip(features, labels, strict=True):
            weight = 1.0 if self.weights is None else self.weights[label]
            placed = self.centroids[label, 0] < FAR
            self.centroids[label] += (min(1.0, self.rate * weight) if placed else 1.0) * (feature - self.centroids[label])
        return result

    def test(self, inputs, labels):
        return self.measure(inputs, labels)[0]

    def set_learning_rate(self, rate):
        self.rate = rate

    def snapshot(self):
        return self.centroids.copy()

    def restore(self, state):
        self.centroids[:] = state


@hookimpl
def tl_train(model, dataset, preprocessing, config, reporter, events):
    classifier = MeanColour(dataset.num_outputs)
    fit(classifier, dataset, preprocessing, config, reporter, events)
    return {"base": model, "centroids": classifier.centroids.tolist()}


@hookimpl
def tl_on_epoch_start():
    time.sleep(float(os.environ.get("TL_FAKE_EPOCH_SECONDS", "0")))  # lets tests interrupt a run mid-training


@hookimpl
def tl_save_model(model, path):
    (path / "model.json").write_text(json.dumps(model))
    return path


@hookimpl
def tl_quantize(model, calibration, preprocessing):
    import numpy as np

    for _ in calibration():  # a real quantizer measures activation ranges on these batches
        pass
    mean, std = np.asarray(preprocessing.mean), np.asarray(preprocessing.std)
    centroids = np.round(np.asarray(model["centroids"]) * std + mean)  # whole pixel values: raw input
    return {**model, "centroids": centroids.tolist(), "quantized": True}


@hookimpl
def tl_export_quantized(model, path):
    (path / "model_quantized.json").write_text(json.dumps(model))
    return path / "model_quantized.json"


@hookimpl
def tl_load_model(path):
    quantized = path / "model_quantized.json"
    return json.loads((quantized if quantized.exists() else path / "model.json").read_text())


@hookimpl
def tl_predict(model, images):
    import numpy as np

    return scores(np.asarray(model["centroids"]), mean_colour(images))
