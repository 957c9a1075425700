"""A complete framework pack in a page of numpy: the nearest mean colour.

The minimal example of docs/writing-a-plugin.md ("Writing a framework pack"), and
the stand-in for TensorFlow in tl's own tests: load it with
``tl run -p tests.fake_framework`` and set ``"framework": "fake"``. The "base
model" averages each image's colour; training places one centroid per label id;
prediction scores each image by its distance to every centroid. Quantizing rounds
the centroids to whole pixel values, for raw 0-255 input as a device gives it.
"""

import json
import os
import time

from tlcore.frameworks import Framework
from tlcore.hookspecs import hookimpl
from tlcore.training import TrainingLoop, announce_training, run_seed, training_data

TL_FRAMEWORK = "fake"
FAR = 1e3
"""Distance of a label id without training images from everything."""


@hookimpl
def tl_frameworks():
    return [Framework(
        name="fake",
        summary="nearest mean colour (pure numpy; tl's tests and docs)",
        keys=("feature_cache", "preprocessing"),
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


def measure(centroids, features, labels):
    """``(mean cross-entropy, number correct)`` of a batch."""
    import numpy as np

    predicted = scores(centroids, features)
    loss = -np.log(predicted[np.arange(len(labels)), labels] + 1e-7).mean()
    return loss, int((predicted.argmax(axis=1) == labels).sum())


@hookimpl
def tl_train(model, dataset, preprocessing, config, reporter, events):
    import numpy as np

    delay = float(os.environ.get("TL_FAKE_EPOCH_SECONDS", "0"))  # lets tests interrupt a run mid-training
    data = training_data(dataset, preprocessing, config, reporter, run_seed(config),
                         compute=mean_colour, dim=3, model_key=lambda: "mean-colour")
    features = (lambda batch: batch) if data.cached else mean_colour
    centroids = np.full((dataset.num_outputs, 3), FAR)
    announce_training(reporter, config, dataset.num_outputs, model["name"], len(model["layers"]), data.cached)
    loop = TrainingLoop(reporter, events, config.epochs, data.num_train, data.num_validation)
    for epoch in loop:
        time.sleep(delay)
        sums, counts = np.zeros((dataset.num_outputs, 3)), np.zeros(dataset.num_outputs)
        for images, labels in data.training(epoch):
            batch = features(images)
            loop.trained(len(labels), *measure(centroids, batch, labels))
            np.add.at(sums, labels, batch)
            np.add.at(counts, labels, 1)
        seen = counts > 0
        centroids[seen] = sums[seen] / counts[seen, None]
        for images, labels in data.validation():
            loop.validated(len(labels), *measure(centroids, features(images), labels))
        loop.end_epoch()
    return {"base": model, "centroids": centroids.tolist()}


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
