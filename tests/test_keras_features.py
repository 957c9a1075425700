"""Frozen-base training on features computed once: in memory, on disk (reused, refreshed), or off."""

import json

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


def test_augmentation_keeps_the_cache_with_views_and_streams_without(tiny):
    root, configure = tiny
    result = run_tl("run", configure(epochs=1, augmentation=["flip", "brightness"]))
    assert result.returncode == 0, result.stderr
    assert "3 augmented views (flip, brightness) of each training image" in result.stdout, "3 images per class"
    assert "on features computed once, one of 4 views of each image per epoch" in result.stdout
    for extra in ({"augmentation": ["flip", "brightness"], "augmentation_views": 0}, {"fine_tune_layers": 3}):
        result = run_tl("run", configure(epochs=1, **extra))
        assert result.returncode == 0, (extra, result.stderr)
        assert "features computed once" not in result.stdout, extra
        assert json.loads((root / "out" / "results.json").read_text())["num_images"] == 2


def test_the_feature_cache_key_changes_with_the_weights_and_only_then(tiny):
    """The Keras pack's model key: the disk cache is reused while the extractor's weights are unchanged."""
    import tensorflow as tf

    from tlplugins.keras.trainer import model_key

    inputs = tf.keras.Input((32, 32, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(4, 3)(inputs)))
    first = model_key(model)
    assert model_key(model) == first
    model.layers[1].kernel.assign(model.layers[1].kernel * 2)
    assert model_key(model) != first


def test_a_seeded_run_repeats_exactly_even_with_augmentation(tiny):
    root, configure = tiny
    config = configure(augmentation=["flip", "rotation"], augmentation_views=0, seed=7)
    runs = [run_tl("run", config) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    epoch_lines = [[line[line.index("loss:"):] for line in run.stdout.splitlines() if "val_loss" in line]
                   for run in runs]
    assert epoch_lines[0] == epoch_lines[1] and len(epoch_lines[0]) == 2


def test_two_phase_fine_tuning_trains_the_head_then_the_last_layers(tiny):
    root, configure = tiny
    result = run_tl("run", configure(epochs=1, fine_tune_layers=3, fine_tune_epochs=1, class_weight="balanced",
                                     learning_rate_schedule="cosine"))
    assert result.returncode == 0, result.stderr
    assert "Epoch 1/2 (head)" in result.stdout and "Epoch 2/2 (fine-tuning the last 3 layers)" in result.stdout
