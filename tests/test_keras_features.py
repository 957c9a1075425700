"""Frozen-base training on features computed once: in memory, on disk (reused, refreshed), or off."""

import io
import json
import os

import pytest

from tests.builders import colour_project
from tests.conftest import run_tl

pytestmark = pytest.mark.tensorflow


@pytest.fixture
def tiny(tmp_path):
    """A tiny project and a function writing its configuration with changes."""
    return tmp_path, lambda **extra: colour_project(tmp_path, **{"epochs": 2, "seed": 1, **extra})


def test_features_are_computed_once_in_memory_by_default(tiny):
    root, configure = tiny
    result = run_tl("run", configure())
    assert result.returncode == 0, result.stderr
    assert "Computing features once per image" in result.stdout and "MiB in memory" in result.stdout
    assert "on features computed once" in result.stdout
    assert result.stdout.count("Epoch ") == 2
    assert not (root / "out" / ".tl-cache").exists(), "small feature sets stay in memory"


def test_with_augmentation_or_fine_tuning_images_stream_through_the_whole_model(tiny):
    root, configure = tiny
    for extra in ({"augmentation": ["flip", "brightness"]}, {"fine_tune_layers": 3}):
        result = run_tl("run", configure(epochs=1, **extra))
        assert result.returncode == 0, (extra, result.stderr)
        assert "features computed once" not in result.stdout, extra
        assert json.loads((root / "out" / "results.json").read_text())["num_images"] == 2


def test_disk_cache_is_reused_only_while_model_preprocessing_and_files_are_unchanged(tiny):
    import tensorflow as tf

    from plugins.datasets.imagenet_folder import tl_load_dataset
    from plugins.keras.features import CACHE_FOLDER, feature_arrays
    from tlcore.config import load_config
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter

    from plugins.keras import base_model, trainer

    root, configure = tiny
    config = load_config(configure(), plugin_keys=[*base_model.tl_config_keys(), *trainer.tl_config_keys()])
    config.output_dir.mkdir()
    quiet = Reporter(stream=io.StringIO(), err=io.StringIO())
    dataset = tl_load_dataset(config=config, reporter=quiet)
    inputs = tf.keras.Input((32, 32, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(4, 3)(inputs)))

    def features(model=model, preprocessing=None):
        preprocessing = preprocessing or Preprocessing.from_config(config)
        reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
        arrays = feature_arrays(model, dataset, preprocessing, config, reporter, mode="disk")
        folders = sorted(p.name for p in (config.output_dir / CACHE_FOLDER).glob("features-*"))
        return arrays, folders, reporter.stream.getvalue()

    arrays, [first], said = features()
    assert "Computing features once per image into" in said
    assert arrays["training"][0].shape == (6, 4) and list(arrays["training"][1]) == [1, 1, 1, 0, 0, 0]
    reused, folders, said = features()
    assert "reusing the cache" in said and folders == [first]
    assert (reused["validation"][0] == arrays["validation"][0]).all()

    os.utime(dataset.training.samples[0][0], ns=(0, 0))
    _, [second], said = features()
    assert "reusing" not in said and second != first, "a changed image file refreshes the cache"

    _, [third], said = features(preprocessing=Preprocessing("unit", 32, 1 / 255, 0.0))
    assert "reusing" not in said and third != second, "other preprocessing, other features"

    model.layers[1].kernel.assign(model.layers[1].kernel * 2)
    _, [fourth], said = features()
    assert "reusing" not in said and fourth not in (second, third), "other weights, other features"


def test_a_seeded_run_repeats_exactly_even_with_augmentation(tiny):
    root, configure = tiny
    config = configure(augmentation=["flip", "rotation"], seed=7)
    runs = [run_tl("run", config) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    epoch_lines = [[line[line.index("loss:"):] for line in run.stdout.splitlines() if "val_loss" in line]
                   for run in runs]
    assert epoch_lines[0] == epoch_lines[1] and len(epoch_lines[0]) == 2
