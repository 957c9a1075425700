"""Real `tl run`s with TensorFlow on tiny inputs: what a user sees and what they get.

One learning run (a small random-init CNN base with its own classification top,
trained on scikit-image's textures) is shared by the tests that inspect its
outputs; the other tests each do one short run of their own.
"""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.builders import texture_dataset, write_labels
from tests.conftest import REPO, Project, is_output, one_line_error, run_tl
from tlcore.preprocessing import PRESETS

pytestmark = pytest.mark.tensorflow

SIZE = 64
TRAIN_PER_CLASS = 12
VAL_PER_CLASS = 6
SEED = 0
LEARNING = {"epochs": 8, "learning_rate": 0.01, "batch_size": 8, "preprocessing": "mobilenet_v2", "seed": SEED}
"""Settings under which the new head learns the textures (checked with SEED 0-11: Top-1 >= 0.78)."""


def model_input(paths, preprocessing):
    """Images as preprocessing.json says the model takes them, computed with PIL (not with tl's pipeline)."""
    import numpy as np
    from PIL import Image

    size = preprocessing["size"]
    pixels = [
        np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
        for path in paths
    ]
    return ((np.stack(pixels) - np.asarray(preprocessing["mean"])) / np.asarray(preprocessing["std"])).astype("float32")


def build_base_cnn(training_dir):
    """A small random-init CNN *with* a classification top (Dense(10, softmax)), like a downloaded model.

    Random convolutions give texture features that separate the classes, but tiny
    and correlated ones; a normalisation layer set from the (unlabelled) training
    images scales them as a pre-trained base would. No label is used: only the
    head that tl trains can learn which texture is which.
    """
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    layers = tf.keras.layers
    inputs = tf.keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Conv2D(16, 3, activation="relu", kernel_initializer="he_normal")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu", kernel_initializer="he_normal")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu", kernel_initializer="he_normal")(x)
    features = layers.GlobalAveragePooling2D(name="pool")(x)
    mean, std = PRESETS["mobilenet_v2"]
    images = model_input(sorted(training_dir.glob("*/*.jpg")), {"size": SIZE, "mean": mean, "std": std})
    values = tf.keras.Model(inputs, features).predict(images, verbose=0)
    normalized = layers.Normalization(mean=values.mean(0), variance=values.var(0), name="feature_norm")(features)
    outputs = layers.Dense(10, activation="softmax", name="imagenet_top")(normalized)
    return tf.keras.Model(inputs, outputs, name="tiny_cnn")


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    """brick/grass/gravel crops: dataset/{training,validation,labels.json}, shared read-only."""
    return texture_dataset(tmp_path_factory.mktemp("textures"), TRAIN_PER_CLASS, VAL_PER_CLASS, crop=SIZE, seed=SEED)


@pytest.fixture(scope="module")
def base_h5(textures, tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "tiny_cnn.h5"
    build_base_cnn(textures / "training").save(path)
    return path


def textures_project(root, textures, **changes):
    """A project on the shared textures dataset (absolute paths), with ``changes`` to the configuration."""
    project = Project(root)
    project.values.update({
        "dataset_training_dir": str(textures / "training"),
        "dataset_validation_dir": str(textures / "validation"),
        "input_tensor_size": SIZE,
        "framework": "keras",
        **changes,
    })
    project.write()
    return project


def validation_samples(textures, labels):
    """``[(path, label id)]`` of the validation images, ids from ``labels`` (class name -> id)."""
    return [(path, labels[path.parent.name]) for path in sorted((textures / "validation").glob("*/*.jpg"))]


def load_saved_model(project):
    import tensorflow as tf

    return tf.keras.models.load_model(str(project.root / "out" / "saved_model"))


def read_json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def trained(textures, base_h5, tmp_path_factory):
    """One real run on the textures with the small CNN base: ``(project, CLI result)``."""
    root = tmp_path_factory.mktemp("trained")
    project = textures_project(root, textures, source_keras_model=str(base_h5), **LEARNING)
    return project, project.run(fake=False)


def test_run_learns_textures_and_writes_outputs(trained, textures):
    """A run shows Keras-style epochs, removes the base's own top, learns, and writes every output."""
    project, result = trained
    assert result.exit_code == 0, result.output
    assert "Top layers removed: imagenet_top (Dense)" in result.output
    epochs = LEARNING["epochs"]
    assert re.search(rf"^Epoch 1/{epochs}$", result.output, re.MULTILINE), result.output
    assert re.search(rf"^Epoch {epochs}/{epochs}$", result.output, re.MULTILINE), result.output
    assert re.search(r"loss: [\d.]+ - acc: [\d.]+ - val_loss: [\d.]+ - val_acc: [\d.]+", result.output), result.output

    results = project.results()
    assert results["top_1_accuracy"] >= 0.6, result.output
    assert results["num_images"] == len(list((textures / "validation").glob("*/*.jpg")))

    saved = project.root / "out" / "saved_model"
    assert (saved / "saved_model.pb").is_file()
    assert read_json(saved / "labels.json") == read_json(textures / "labels.json")
    assert read_json(saved / "preprocessing.json")["size"] == SIZE
    assert read_json(saved / "tl_run.json")["metrics"] == results


def validation_inputs(project, textures):
    """``(labels, [(path, id)], model inputs)`` of the validation images, prepared as the saved
    preprocessing.json says."""
    saved = project.root / "out" / "saved_model"
    labels = read_json(saved / "labels.json")
    samples = validation_samples(textures, labels)
    return labels, samples, model_input([path for path, _ in samples], read_json(saved / "preprocessing.json"))


def test_saved_model_reloads_and_reproduces_reported_accuracy(trained, textures):
    """The saved model, fed as preprocessing.json says, scores one column per label id and the reported accuracy."""
    import numpy as np

    project, _ = trained
    labels, samples, images = validation_inputs(project, textures)

    scores = load_saved_model(project).predict(images, verbose=0)

    assert scores.shape == (len(samples), max(labels.values()) + 1)
    accuracy = np.mean(scores.argmax(axis=1) == [label for _, label in samples])
    reported = project.results()["top_1_accuracy"]
    assert abs(accuracy - reported) <= 1 / len(samples) + 1e-9, (accuracy, reported)


def test_saved_model_serves_without_keras(trained, textures):
    """Tools that read SavedModels without Keras (TF Serving, converters) find a serving signature:
    image in, predictions out, the same scores as the Keras model."""
    import numpy as np
    import tensorflow as tf

    project, _ = trained
    saved = project.root / "out" / "saved_model"
    _, _, images = validation_inputs(project, textures)
    images = images[:4]

    serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
    served = serve(image=tf.constant(images))["predictions"].numpy()

    assert np.allclose(served, load_saved_model(project).predict(images, verbose=0), atol=1e-5)


def test_label_ids_with_a_gap_are_the_output_indices(textures, base_h5, tmp_path):
    """With ids 1..3 the model has 4 outputs, index 0 is reported unused, and predictions are labels.json ids."""
    import numpy as np

    labels = {"brick": 1, "grass": 2, "gravel": 3}
    labels_file = write_labels(tmp_path, labels)
    project = textures_project(
        tmp_path, textures, source_keras_model=str(base_h5), evaluate_label_file=str(labels_file), **LEARNING
    )

    result = project.run(fake=False)

    assert result.exit_code == 0, result.output
    unused = [line for line in result.output.splitlines() if line.startswith("Warning:") and "unused" in line]
    assert len(unused) == 1 and re.search(r"\b0\b", unused[0]), result.output
    samples = validation_samples(textures, labels)
    preprocessing = read_json(project.root / "out" / "saved_model" / "preprocessing.json")
    images = model_input([path for path, _ in samples], preprocessing)
    predicted = load_saved_model(project).predict(images, verbose=0).argmax(axis=1)
    assert set(predicted) <= set(labels.values())
    assert np.mean(predicted == [label for _, label in samples]) >= 0.6


def test_default_mobilenet_v2_base(textures, tmp_path):
    """Without source_keras_model, MobileNetV2 (no top, random weights here) trains and saves a 3-class model."""
    project = textures_project(
        tmp_path, textures, weights=None, mobilenet_alpha=0.35, input_tensor_size=32, epochs=1, batch_size=8
    )

    result = project.run(fake=False)

    assert result.exit_code == 0, result.output
    assert "MobileNetV2" in result.output
    assert "Top layers: none to remove" in result.output
    assert 'Warning: MobileNetV2 with random weights ("weights": null): its features are random' in result.output
    assert load_saved_model(project).output_shape == (None, 3)
    assert project.results()["num_images"] == 3 * VAL_PER_CLASS


def test_mct_quantizes_the_saved_model(trained, textures):
    """model-compression-toolkit quantizes the saved model; the quantized model still tells the textures apart."""
    import model_compression_toolkit as mct
    import numpy as np

    project, _ = trained
    labels, samples, images = validation_inputs(project, textures)

    def representative_data():
        for batch in (images[:4], images[-4:]):
            yield [batch]

    quantized, _ = mct.ptq.keras_post_training_quantization(load_saved_model(project), representative_data)

    scores = quantized.predict(images, verbose=0)
    assert scores.shape == (len(samples), len(labels))
    assert np.mean(scores.argmax(axis=1) == [label for _, label in samples]) >= 0.6


class LiveRun:
    """`tl run` as a subprocess (stderr merged into stdout) whose output is read while it runs."""

    def __init__(self, config):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tlcli", "run", str(config)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def wait_for(self, text, timeout=120):
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"tl ended before printing {text!r}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout} s:\n{self.output}"
            time.sleep(0.05)

    def stop(self, signum, timeout=5):
        """Send ``signum``; return the exit code, which must come within ``timeout`` seconds."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout=timeout)
        self.reader.join()
        return code


@pytest.fixture
def live_runs():
    """Start `tl run` subprocesses; any still running at the end is killed."""
    runs = []

    def start(config):
        runs.append(LiveRun(config))
        return runs[-1]

    yield start
    for run in runs:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def output_files(project):
    """Everything under output_dir and evaluate_result_dir, hidden entries included: path -> bytes (None: folder)."""
    snapshot = {}
    for folder in ("out", "results"):
        for path in sorted((project.root / folder).rglob("*")):
            if is_output(path.relative_to(project.root)):
                snapshot[str(path.relative_to(project.root))] = None if path.is_dir() else path.read_bytes()
    return snapshot


LONG_TRAINING = {"epochs": 100000, "batch_size": 8, "seed": SEED}


@pytest.mark.parametrize("signum, code, word", [
    (signal.SIGINT, 130, "Interrupted"),
    (signal.SIGTERM, 143, "Terminated"),
], ids=["ctrl-c", "sigterm"])
def test_stopping_training_writes_nothing(textures, base_h5, tmp_path, live_runs, signum, code, word):
    """Ctrl-C (or SIGTERM) while training stops within seconds, says so without a traceback, and writes nothing."""
    project = textures_project(tmp_path, textures, source_keras_model=str(base_h5), **LONG_TRAINING)
    run = live_runs(project.config_path)
    run.wait_for("Epoch 2/")

    assert run.stop(signum) == code, run.output
    assert word in run.output and "Traceback" not in run.output, run.output
    assert output_files(project) == {}


def damaged_png(path, source):
    """``source`` saved as a PNG whose compressed pixel data is overwritten mid-file; header and end intact."""
    from PIL import Image

    buffer = io.BytesIO()
    with Image.open(source) as image:
        image.save(buffer, "PNG")
    data = buffer.getvalue()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes(64) + data[middle + 64:])


def test_an_image_that_cannot_be_decoded_is_named_then_skipped_or_stops_the_run(textures, base_h5, tmp_path):
    """A PNG whose pixel data is damaged passes the byte checks but not the decoder: the user learns which
    file it is, and "bad_images" decides whether the run goes on without it or stops."""
    dataset = tmp_path / "dataset"
    shutil.copytree(textures, dataset)
    damaged = dataset / "training" / "brick" / "damaged.png"
    damaged_png(damaged, dataset / "training" / "brick" / "brick_0.jpg")
    project = textures_project(tmp_path, dataset, source_keras_model=str(base_h5), epochs=1)

    result = project.run(fake=False)
    assert result.exit_code == 0, result.output
    assert f"training: skipped 1 image(s) that cannot be decoded: {damaged} (" in result.output

    project.write(bad_images="error")
    before = project.files()
    result = project.run(fake=False)
    assert result.exit_code == 2, result.output
    assert f"{damaged}: this image cannot be decoded (" in one_line_error(result)
    assert project.files() == before


def test_tensorflow_error_during_training_is_one_line_naming_the_plugin(textures, tmp_path):
    """An error raised inside TensorFlow while training (here: a base whose features turn NaN) stops the run
    with TensorFlow's own message on one line, naming the plugin, and writes nothing."""
    import tensorflow as tf

    inputs = tf.keras.Input((SIZE, SIZE, 3))
    pooled = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(4, 3)(inputs))
    broken = tf.keras.layers.Lambda(  # refers to nothing outside itself, so the .h5 file loads anywhere
        lambda x: __import__("tensorflow").debugging.check_numerics(x * float("nan"), "base features"))(pooled)
    base = tmp_path / "nan_base.h5"
    tf.keras.Model(inputs, broken).save(base)
    project = textures_project(tmp_path, textures, source_keras_model=str(base), epochs=1)
    before = project.files()

    result = project.run(fake=False)

    assert result.exit_code == 1, result.output
    error = one_line_error(result)
    assert 'plugin "keras.trainer" failed in tl_train: InvalidArgumentError: base features' in error, error
    assert "NaN" in error and project.files() == before


def test_imagenet_download_failure_names_the_ways_out(textures, tmp_path):
    """Without network, the ImageNet weights download fails fast with one line: set "weights" to a file or null."""
    project = textures_project(tmp_path, textures, mobilenet_alpha=0.35, input_tensor_size=96, epochs=1)
    offline = {
        "KERAS_HOME": str(tmp_path / "keras_home"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }

    result = run_tl("run", project.config_path, env=offline, timeout=120)

    assert result.returncode != 0
    error = one_line_error(result)
    assert "ImageNet weights" in error and '"weights"' in error and "null" in error, error
    assert re.search(r"could not get|download|fetch", error, re.IGNORECASE), error
