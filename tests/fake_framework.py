"""A pure-Python stand-in for TensorFlow, so the core can be driven in milliseconds.

Load it with ``tl run -p tests.fake_framework``: registered last, it is asked
before the built-in Keras plugins (which are ``trylast``). The "model" is a dict;
the "classifier" predicts the most common training label.
"""

import json
import os
import time
from collections import Counter

from tlcore.hookspecs import hookimpl


@hookimpl
def tl_load_base_model(config, reporter):
    reporter.info("Base model: fake")
    return {"name": "fake-base", "layers": ["features", "top"]}


@hookimpl
def tl_remove_top_layer(model, reporter):
    reporter.info("Top layers removed: top (Fake)")
    return {**model, "layers": model["layers"][:-1]}


@hookimpl
def tl_train(model, dataset, config, reporter, events):
    delay = float(os.environ.get("TL_FAKE_EPOCH_SECONDS", "0"))
    majority = Counter(dataset.training.label_ids).most_common(1)[0][0]
    for epoch in range(1, config.epochs + 1):
        reporter.info(f"Epoch {epoch}/{config.epochs}")
        events.epoch_start(epoch)
        time.sleep(delay)
        events.epoch_end(epoch, {"loss": 1.0 / epoch, "acc": 0.5})
    return {"base": model, "predicts": majority}


@hookimpl
def tl_save_model(model, path):
    (path / "model.json").write_text(json.dumps(model))
    return path


@hookimpl
def tl_evaluate(model, dataset):
    labels = dataset.validation.label_ids
    correct = sum(label == model["predicts"] for label in labels)
    return {"top_1_accuracy": correct / len(labels), "num_images": len(labels)}
