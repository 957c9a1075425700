"""Models and disks that cannot work are refused plainly, before any long work starts."""

import io
import json
import shutil
import zipfile
from collections import namedtuple

import pytest

from tlcore.errors import ModelError
from tlcore.report import Reporter

pytestmark = pytest.mark.tensorflow


def config_for(path, size=32):
    from tlcore.config import RunConfig

    folder = path.parent
    return RunConfig(
        config_file=folder / "configuration.json", dataset_training_dir=folder, dataset_validation_dir=folder,
        evaluate_label_file=folder / "labels.json", output_dir=folder / "out", evaluate_result_dir=folder / "out",
        input_tensor_size=size, options={"source_keras_model": path, "weights": "imagenet", "mobilenet_alpha": 1.0},
    )


def load(path):
    from tlplugins.keras.base_model import tl_load_base_model

    return tl_load_base_model(config=config_for(path), reporter=Reporter(stream=io.StringIO(), err=io.StringIO()),
                              base=None)


def small_model():
    import tensorflow as tf

    inputs = tf.keras.Input((32, 32, 3))
    features = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(features))


def test_h5_saved_by_keras_3_is_named_as_such(tmp_path):
    import h5py

    path = tmp_path / "model.h5"
    small_model().save(path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["keras_version"] = "3.3.3"
        config = json.loads(handle.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = "keras.src.layers.SomethingNew"
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelError, match=r"model.h5 was saved by Keras 3.3.3, which this Keras \(2.15"):
        load(path)


def test_keras_3_archive_is_named_as_such(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.4.1"}))
        archive.writestr("config.json", json.dumps({"class_name": "Functional", "module": "keras", "config": {}}))
    with pytest.raises(ModelError, match="saved by Keras 3.4.1.*save it again with TensorFlow 2.15's tf.keras"):
        load(path)


def test_a_folder_that_is_not_a_saved_model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a model")
    with pytest.raises(ModelError, match="Keras cannot load the model .*model: OSError: .*SavedModel"):
        load(folder)


def test_not_enough_disk_space_is_reported_before_training(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tlcli.main import main
    from tests.builders import colour_project

    config = colour_project(tmp_path)
    real = shutil.disk_usage
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(real(folder).total, real(folder).total, 2**20))
    result = CliRunner().invoke(main, ["run", str(config)])
    assert result.exit_code == 1
    assert "Error: not enough free disk space in" in result.output and "1 MiB free, the SavedModel needs" in result.output
    assert "Epoch" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_weights_only_file_is_named_as_such(tmp_path):
    path = tmp_path / "weights.h5"
    small_model().save_weights(path)
    with pytest.raises(ModelError, match="weights.h5 holds only weights, not a model; save the whole model"):
        load(path)
