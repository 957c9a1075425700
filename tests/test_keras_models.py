"""The Keras plugins called directly on tiny models built in each test: top removal and base models."""

import io
import json
import random
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from tlcore.config import RunConfig
from tlcore.errors import ModelError
from tlcore.report import Reporter

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


@pytest.fixture
def reporter():
    return Reporter(stream=io.StringIO(), err=io.StringIO())


def conv_base(tf, size=32, name="conv_base"):
    """Image -> two ReLU convolutions: a model with no classification top."""
    layers = tf.keras.layers
    inputs = tf.keras.Input((size, size, 3))
    x = layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
    return tf.keras.Model(inputs, x, name=name)


def remove_top(model, reporter, remove="auto"):
    from tlplugins.top_removal.classifier_head import tl_remove_top_layer

    return tl_remove_top_layer(model=model, config=SimpleNamespace(options={"remove_top": remove}), reporter=reporter)


def same_outputs(first, second, size=32):
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    return np.allclose(first.predict(images, verbose=0), second.predict(images, verbose=0))


# --- plugins/top_removal/classifier_head.py ----------------------------------


def test_dense_classifier_top_is_removed_down_to_pooling(tf, reporter):
    """GAP -> Dropout -> Dense(softmax): Dense and Dropout go, features are the pooled vector, and the user is told."""
    layers = tf.keras.layers
    base = conv_base(tf)
    pooled = layers.GlobalAveragePooling2D(name="gap")(base.output)
    x = layers.Dropout(0.2, name="drop")(pooled)
    model = tf.keras.Model(base.input, layers.Dense(5, activation="softmax", name="fc")(x))

    extractor = remove_top(model, reporter)

    assert extractor.output_shape == (None, 8)
    assert extractor.layers[-1].name == "gap"
    assert same_outputs(extractor, tf.keras.Model(base.input, pooled))
    message = reporter.stream.getvalue()
    assert "Top layers removed: drop (Dropout), fc (Dense)" in message and '"gap"' in message, message


def test_mobilenet_v1_style_top_is_removed_down_to_pooling(tf, reporter):
    """GAP(keepdims) -> Dropout -> 1x1 Conv2D -> Reshape -> softmax Activation all go; features are the pooling."""
    layers = tf.keras.layers
    base = conv_base(tf)
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="gap")(base.output)
    x = layers.Dropout(1e-3, name="dropout")(pooled)
    x = layers.Conv2D(10, 1, name="conv_preds")(x)
    x = layers.Reshape((10,), name="reshape")(x)
    model = tf.keras.Model(base.input, layers.Activation("softmax", name="act_softmax")(x))

    extractor = remove_top(model, reporter)

    assert extractor.output_shape == (None, 1, 1, 8)
    assert same_outputs(extractor, tf.keras.Model(base.input, pooled))
    message = reporter.stream.getvalue()
    for name in ("dropout", "conv_preds", "reshape", "act_softmax"):
        assert name in message, message


def test_model_without_top_is_used_unchanged(tf, reporter):
    """A model ending in a ReLU convolution is returned as it is, and the user is told nothing was removed."""
    model = conv_base(tf)

    assert remove_top(model, reporter) is model
    assert "Top layers: none to remove" in reporter.stream.getvalue()


def test_a_last_layer_that_is_not_a_classifier_is_removed_with_a_warning_and_remove_top_false_keeps_it(tf, reporter):
    """A base whose last layer is a 16-wide Dense embedding (no softmax, not 1000 classes): the heuristic removes it
    and warns; with "remove_top": false the embedding is the features, and nothing is said of a classifier."""
    layers = tf.keras.layers
    base = conv_base(tf)
    pooled = layers.GlobalAveragePooling2D(name="gap")(base.output)
    model = tf.keras.Model(base.input, layers.Dense(16, name="embedding")(pooled))

    assert remove_top(model, reporter).output_shape == (None, 8)
    warning = reporter.err.getvalue()
    assert 'the last layer, "embedding" (16 outputs, no softmax), does not look like a classifier' in warning
    assert '"remove_top": false' in warning

    kept = Reporter(stream=io.StringIO(), err=io.StringIO())
    assert remove_top(model, kept, remove=False) is model
    assert 'Top layers: none removed ("remove_top": false); features are the output of "embedding"' in \
        kept.stream.getvalue()
    assert kept.err.getvalue() == ""


def test_an_imagenet_classifier_top_is_removed_without_a_warning(tf, reporter):
    layers = tf.keras.layers
    base = conv_base(tf)
    pooled = layers.GlobalAveragePooling2D(name="gap")(base.output)
    remove_top(tf.keras.Model(base.input, layers.Dense(1000, name="logits")(pooled)), reporter)
    assert "Top layers removed: logits (Dense)" in reporter.stream.getvalue()
    assert reporter.err.getvalue() == "", "1000 outputs: an ImageNet classifier's, logits or not"


def test_model_of_only_classifier_layers_is_refused(tf, reporter):
    """Flatten + Dense has nothing that could give features: a ModelError says so (no crash, no empty model)."""
    layers = tf.keras.layers
    model = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), layers.Flatten(), layers.Dense(3, activation="softmax")])

    with pytest.raises(ModelError, match="no layer that could be a feature output"):
        remove_top(model, reporter)


def test_sequential_model_wrapping_a_base_is_cut_after_pooling(tf, reporter):
    """Sequential([conv base, GAP, Dense]): the Dense goes and the features are the pooled base output."""
    layers = tf.keras.layers
    base = conv_base(tf)
    model = tf.keras.Sequential([
        tf.keras.Input((32, 32, 3)), base, layers.GlobalAveragePooling2D(name="gap"),
        layers.Dense(4, activation="softmax", name="fc"),
    ])

    extractor = remove_top(model, reporter)

    assert extractor.output_shape == (None, 8)
    pooled = tf.keras.Sequential([tf.keras.Input((32, 32, 3)), base, layers.GlobalAveragePooling2D()])
    assert same_outputs(extractor, pooled)
    assert "Top layers removed: fc (Dense)" in reporter.stream.getvalue()


def test_a_model_tl_saved_can_be_the_base_of_the_next_run(tf, tmp_path, reporter):
    """Re-training from tl's own SavedModel: its head is removed and the features come from the nested base."""
    from tlplugins.keras.saved_model import tl_save_model
    from tlplugins.keras.trainer import build_classifier

    user = conv_base(tf)
    pooled = tf.keras.layers.GlobalAveragePooling2D(name="gap")(user.output)
    with_top = tf.keras.Model(user.input, tf.keras.layers.Dense(5, activation="softmax", name="top")(pooled))
    first = build_classifier(remove_top(with_top, reporter), num_outputs=3, size=32, dropout=0.2).model
    (tmp_path / "saved").mkdir()
    tl_save_model(model=first, path=tmp_path / "saved", reporter=reporter)

    features = remove_top(tf.keras.models.load_model(tmp_path / "saved", compile=False), reporter)

    assert features.output_shape == (None, 8)
    assert "Top layers removed: dropout (Dropout), predictions (Dense)" in reporter.stream.getvalue()
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    assert np.allclose(features.predict(images, verbose=0), first.get_layer(index=1).predict(images, verbose=0),
                       atol=1e-5)


# --- plugins/keras/base_model.py: the user's model (source_keras_model) -----


def config_with_model(tmp_path, model_path, size=32, **options):
    return RunConfig(
        config_file=tmp_path / "configuration.json",
        dataset_training_dir=tmp_path / "training",
        dataset_validation_dir=tmp_path / "validation",
        evaluate_label_file=tmp_path / "labels.json",
        output_dir=tmp_path / "out",
        evaluate_result_dir=tmp_path / "results",
        input_tensor_size=size,
        options={"source_keras_model": model_path, "weights": "imagenet", "mobilenet_alpha": 1.0, **options},
    )


def load_base(config, reporter):
    from tlplugins.keras.base_model import tl_load_base_model
    from tlplugins.keras.bases import tl_base_models

    mobilenet = next(base for base in tl_base_models() if base.name == "mobilenet_v2")
    return tl_load_base_model(config=config, reporter=reporter, base=mobilenet)


def test_mobilenet_v2_loads_a_local_weights_file(tf, tmp_path, reporter):
    """Offline users point "weights" at a file: the default base is built with exactly those weights."""
    donor = tf.keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    weights = tmp_path / "mobilenet_v2_0.35_no_top.h5"
    donor.save_weights(weights)
    config = config_with_model(tmp_path, None, weights=weights, mobilenet_alpha=0.35)

    model = load_base(config, reporter)

    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), donor.get_weights(), strict=True))
    assert f"{weights} weights" in reporter.stream.getvalue()


def test_a_weights_file_for_another_model_is_a_clear_error(tf, tmp_path, reporter):
    weights = tmp_path / "other.h5"
    single_conv(tf, (32, 32, 3)).save_weights(weights)
    config = config_with_model(tmp_path, None, weights=weights, mobilenet_alpha=0.35)
    with pytest.raises(ModelError, match=r"cannot load MobileNetV2 weights from .*other.h5: ValueError"):
        load_base(config, reporter)


def single_conv(tf, shape):
    return tf.keras.Sequential([tf.keras.Input(shape), tf.keras.layers.Conv2D(4, 3, activation="relu")])


def test_corrupt_h5_names_the_file_and_keras_message(tf, tmp_path, reporter):
    """An .h5 that is not a model: a ModelError with the file's path and what Keras said, not a traceback."""
    path = tmp_path / "model.h5"
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(Exception) as keras_error:
        tf.keras.models.load_model(str(path), compile=False)

    with pytest.raises(ModelError) as error:
        load_base(config_with_model(tmp_path, path), reporter)

    assert str(path) in str(error.value)
    assert str(keras_error.value).splitlines()[0] in str(error.value)


def test_fixed_input_size_mismatch_says_which_size_to_set(tf, tmp_path, reporter):
    """A model made for 48x48 images with input_tensor_size 32: the error says to set input_tensor_size to 48."""
    path = tmp_path / "model48.h5"
    single_conv(tf, (48, 48, 3)).save(path)

    with pytest.raises(ModelError, match="set input_tensor_size to 48"):
        load_base(config_with_model(tmp_path, path, size=32), reporter)


def test_the_smallest_input_size_comes_from_the_model(tf, tmp_path, reporter):
    """A model of any input size whose valid convolutions and pooling need 16x16 pixels: 16 loads, and 15 is refused
    naming 16; Keras' MobileNetV2 needs 32, and says so."""
    layers = tf.keras.layers
    path = tmp_path / "shrinking"
    tf.keras.Sequential([tf.keras.Input((None, None, 3)), layers.Conv2D(4, 5), layers.MaxPooling2D(4),
                         layers.Conv2D(4, 3), layers.GlobalAveragePooling2D()]).save(path)
    assert load_base(config_with_model(tmp_path, path, size=16), reporter) is not None
    with pytest.raises(ModelError, match=r"takes images of at least 16x16 pixels .* input_tensor_size is 15; set it "
                                         r"to 16 or more"):
        load_base(config_with_model(tmp_path, path, size=15), reporter)

    from tlcore.base_models import registered_base_models, select_base_model
    from tlcore.errors import ConfigError
    from tlcore.pluginmanager import make_plugin_manager
    from tlplugins.keras.framework import KERAS

    mobilenet = config_with_model(tmp_path, None, size=31, weights=None, mobilenet_alpha=0.35, base_model="mobilenet_v2")
    with pytest.raises(ConfigError, match=r'MobileNetV2 \("mobilenet_v2"\) takes images of 32 to 1024 pixels, but '
                                          "input_tensor_size is 31; set it to 32 or more"):
        select_base_model(mobilenet, KERAS, registered_base_models(make_plugin_manager()))


def test_single_channel_model_is_refused_clearly(tf, tmp_path, reporter):
    """A grayscale (1-channel) model: the error says tl feeds RGB images with 3 channels."""
    path = tmp_path / "gray.h5"
    single_conv(tf, (32, 32, 1)).save(path)

    with pytest.raises(ModelError, match=r"1-channel.*RGB.*3 channels"):
        load_base(config_with_model(tmp_path, path), reporter)


def test_savedmodel_folder_loads(tf, tmp_path, reporter):
    """A Keras SavedModel folder (any input size) loads and is reported with its path."""
    path = tmp_path / "saved"
    single_conv(tf, (None, None, 3)).save(path)

    model = load_base(config_with_model(tmp_path, path), reporter)

    assert model.input_shape == (None, None, None, 3)
    assert str(path) in reporter.stream.getvalue()


def test_random_mobilenet_v2_features_are_informative_not_vanishing(tf):
    """Keras' default initialisation makes a frozen MobileNetV2's features ~1e-10; tl's random initialisation
    keeps them at unit size, so "weights": null still gives features a head can learn from."""
    from tlplugins.keras.base_model import random_initialise

    model = tf.keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    assert np.abs(model(images, training=False).numpy()).max() < 1e-6
    random_initialise(model, seed=0)
    features = model(images, training=False).numpy()
    assert 0.1 < features.std() < 100
    assert np.abs(features[0] - features[1]).mean() > 0.01, "different images, different features"


def test_a_users_model_without_a_preprocessing_is_told_which_input_range_it_gets(tf, tmp_path, reporter):
    """The SDK notebook's models were trained on [0, 1]: without a "preprocessing" key tl feeds [-1, 1], so it says
    so in one line, and how to change it; a preprocessing.json beside the model (tl's) names the setting to use."""
    path = tmp_path / "model.h5"
    single_conv(tf, (32, 32, 3)).save(path)

    load_base(config_with_model(tmp_path, path), reporter)
    [line] = reporter.err.getvalue().splitlines()
    assert "tl feeds the model pixels scaled to [-1, 1]" in line and '"preprocessing": "unit"' in line

    (tmp_path / "preprocessing.json").write_text(json.dumps(
        {"name": "unit", "size": 32, "mean": [0, 0, 0], "std": [255, 255, 255]}))
    told = Reporter(stream=io.StringIO(), err=io.StringIO())
    load_base(config_with_model(tmp_path, path), told)
    assert 'says the model takes "unit" input' in told.err.getvalue()
    assert 'set "preprocessing": "unit"' in told.err.getvalue()

    chosen = Reporter(stream=io.StringIO(), err=io.StringIO())
    load_base(replace(config_with_model(tmp_path, path), preprocessing="unit"), chosen)
    assert chosen.err.getvalue() == "", "the configuration chose: nothing to say"


def test_a_keras_model_with_a_lambda_layer_is_said_to_run_code_before_it_is_loaded(tf, tmp_path):
    """A Lambda layer's Python code runs when Keras loads the model: the line comes first, naming the model."""
    from tlplugins.keras.saved_model import tl_load_model

    inputs = tf.keras.Input((32, 32, 3))
    outputs = tf.keras.layers.Lambda(lambda x: x * 2.0, name="doubled")(inputs)
    tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(outputs)).save(tmp_path / "lambda_model")
    single_conv(tf, (32, 32, 3)).save(tmp_path / "plain_model")

    said = io.StringIO()
    tl_load_model(path=tmp_path / "lambda_model", reporter=Reporter(stream=said, err=said))
    assert said.getvalue().startswith(f"Warning: {tmp_path / 'lambda_model'} has Lambda layers")
    assert "can run code" in said.getvalue().splitlines()[0]

    quiet = io.StringIO()
    tl_load_model(path=tmp_path / "plain_model", reporter=Reporter(stream=quiet, err=quiet))
    assert "can run code" not in quiet.getvalue()
