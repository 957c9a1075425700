"""`tl quantize` on the AITRIOS SDK quantize notebook's configuration: recognised, checked, and the notebook's
outputs written beside tl's own."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tlcli.main import main
from tests.builders import solid_jpegs, write_labels
from tests.conftest import one_line_error
from tlcore.errors import ConfigError, DatasetError
from tlcore.sdk_quantize import is_sdk_form, load_sdk_config, sdk_dataset


@pytest.fixture
def sdk(tmp_path):
    """The SDK tutorial's layout: a model folder, dataset/{training,validation,labels.json}, configuration.json."""
    solid_jpegs(tmp_path / "dataset" / "training", ["red", "green"], per_class=6, size=40)
    solid_jpegs(tmp_path / "dataset" / "validation", ["red", "green"], per_class=3, size=40, seed=1)
    (tmp_path / "dataset" / "training" / "red" / "deeper").mkdir()
    solid_jpegs(tmp_path / "dataset" / "training" / "red" / "deeper", ["more"], per_class=2, size=40, seed=2)
    write_labels(tmp_path / "dataset", {"red": 0, "green": 1})
    (tmp_path / "model").mkdir()
    values = {
        "source_keras_model": "model", "dataset_image_dir": "dataset/training", "batch_size": 4,
        "input_tensor_size": 32, "iteration_count": 2, "output_dir": "./output",
        "evaluate_image_dir": "dataset/validation", "evaluate_image_extension": "jpg",
        "evaluate_label_file": "dataset/labels.json", "evaluate_result_dir": "./evaluate/results",
    }

    def write(**changes):
        data = {key: value for key, value in {**values, **changes}.items() if value is not None}
        (tmp_path / "configuration.json").write_text(json.dumps(data))
        return tmp_path / "configuration.json"

    write()
    return tmp_path, write


def test_the_sdk_form_is_recognised_by_its_keys(sdk, project):
    root, _ = sdk
    assert is_sdk_form(root / "configuration.json")
    assert not is_sdk_form(project.write())


def test_the_sdk_keys_keep_their_meanings(sdk):
    root, _ = sdk
    config = load_sdk_config(root / "configuration.json")
    assert config.options["source_keras_model"] == root / "model" and config.quantization_images == 8
    assert config.output_dir == root / "output" and config.results_file == root / "evaluate" / "results" / "results.json"
    dataset = sdk_dataset(config)
    assert len(dataset.training) == 14, "calibration images are found in any sub-folder"
    assert [label for _, label in dataset.validation.samples] == [1, 1, 1, 0, 0, 0]


@pytest.mark.parametrize("changes, message", [
    ({"iteration_count": None}, 'missing key "iteration_count" (calibration iterations), which the SDK\'s quantize'),
    ({"itteration_count": 3}, 'unknown key "itteration_count"; did you mean "iteration_count"?'),
    ({"batch_size": 0}, '"batch_size" is 0; it must be at least 1'),
    ({"evaluate_image_extension": ""}, '"evaluate_image_extension" is ""; give an extension such as "jpg"'),
    ({"source_keras_model": "missing.h5"}, '"source_keras_model": not found:'),
    ({"framework": "torch"}, "the SDK's quantize configuration is for Keras models"),
])
def test_a_bad_sdk_configuration_is_one_line(sdk, changes, message):
    root, write = sdk
    write(**changes)
    with pytest.raises(ConfigError) as error:
        load_sdk_config(root / "configuration.json")
    assert message in str(error.value)


def test_bad_sdk_datasets_say_what_to_fix(sdk):
    root, write = sdk
    write(evaluate_image_extension="png")
    with pytest.raises(DatasetError, match=r'no \*.png images in the class folders .*; check "evaluate_image_extension"'):
        sdk_dataset(load_sdk_config(root / "configuration.json"))
    write()
    (root / "dataset" / "validation" / "blue").mkdir()
    with pytest.raises(DatasetError, match='evaluation folder "blue" is not in .*labels.json'):
        sdk_dataset(load_sdk_config(root / "configuration.json"))


def test_quantize_on_an_sdk_configuration_reports_errors_in_one_line(sdk):
    root, write = sdk
    write(batch_size="4")
    result = CliRunner().invoke(main, ["quantize", str(root / "configuration.json")])
    assert result.exit_code == 2
    assert '"batch_size" must be an integer, not a string' in one_line_error(result)


@pytest.mark.tensorflow
def test_the_notebooks_outputs_are_written_and_evaluated(sdk):
    """A Keras model of the SDK training notebook's kind (input [0, 1], no preprocessing.json)."""
    import tensorflow as tf

    root, _ = sdk
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, activation="softmax")(x))
    model.save(root / "model" / "model.h5")
    config = root / "configuration.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "source_keras_model": "model/model.h5"}))

    result = CliRunner().invoke(main, ["quantize", str(config), "--block", "imx500.converter"])

    assert result.exit_code == 0, result.output
    assert "the SDK training notebook's (the model has no preprocessing.json)" in result.output
    assert sorted(p.name for p in (root / "output").iterdir()) == ["imx500", "model.tflite", "model_quantized.tflite"]
    results = json.loads((root / "evaluate" / "results" / "results.json").read_text())
    for key in ("top_1_accuracy_keras", "top_1_accuracy_keras_quantized", "top_1_accuracy_tflite",
                "top_1_accuracy_tflite_quantized"):
        assert 0 <= results[key] <= 1, key
    assert results["top_1_accuracy_tflite"] == pytest.approx(results["top_1_accuracy_keras"])
    interpreter = tf.lite.Interpreter(model_path=str(root / "output" / "model_quantized.tflite"))
    details = interpreter.get_input_details()[0]
    assert details["dtype"] == np.uint8 and details["quantization"] == pytest.approx((1.0, 0)), "raw pixels in"
