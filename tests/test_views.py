"""Augmented views of a frozen base's cached features: computed once per image, one view per image and epoch,
drawn from the seed, the epoch and the image; "auto" spends them on small datasets only."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from tlplugins.datasets.imagenet_folder import tl_load_dataset
from tests.builders import write_labels
from tests.test_run import run_with
from tlcore.config import load_config
from tlcore.errors import ConfigError
from tlcore.features import CACHE_FOLDER, augmented_views, cached_features, view_count
from tlcore.images import decode, view
from tlcore.loader import Views
from tlcore.preprocessing import PRESETS, Preprocessing
from tlcore.report import Reporter
from tlcore.training import CachedData

SIZE = 16
UNIT = Preprocessing("unit", SIZE, *PRESETS["unit"])


def ramps(root, classes=("dark", "light"), per_class=4, seed=0):
    """Images brighter to the right, each with its own slope and noise: a mirror image differs from the image."""
    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            ramp = np.linspace(0, 120 + 40 * i, SIZE)[None, :, None] + 80 * index
            pixels = np.clip(ramp + rng.normal(0, 8, (SIZE, SIZE, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{name}_{i}.png")


@pytest.fixture
def project(project):
    """The shared project with left-to-right ramps as images (PNG: exact pixels)."""
    data = project.root / "ramps"
    ramps(data / "training", per_class=4)
    ramps(data / "validation", per_class=2, seed=1)
    write_labels(data, {"dark": 0, "light": 1})
    project.values.update(dataset_training_dir="ramps/training", dataset_validation_dir="ramps/validation",
                          input_tensor_size=SIZE, seed=7)
    return project


def setting(project, **values):
    config = load_config(project.write(**values))
    config.output_dir.mkdir(exist_ok=True)
    return config, tl_load_dataset(config=config, reporter=Reporter(stream=io.StringIO(), err=io.StringIO()))


def left_minus_right(images):
    """A "base" that tells an image from its mirror image: mean of the left half minus the right half, per channel."""
    return images[:, :, :SIZE // 2].mean(axis=(1, 2)) - images[:, :, SIZE // 2:].mean(axis=(1, 2))


def compute_counting(calls):
    def compute(images):
        calls.append(len(images))
        return left_minus_right(images)

    return compute


def test_view_one_is_the_mirror_image_and_later_views_are_crops_alternately_mirrored():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    assert np.array_equal(view(pixels, 1, ("flip", "crop"), np.random.default_rng(1)), pixels[:, ::-1])
    second = view(pixels, 2, ("flip", "crop"), np.random.default_rng(1))
    third = view(pixels, 3, ("flip", "crop"), np.random.default_rng(1))
    assert second.shape == pixels.shape and not np.array_equal(second, pixels)
    assert np.array_equal(third[:, ::-1], second), "the same crop, mirrored: odd views are mirrored"
    assert np.array_equal(view(pixels, 2, ("flip", "crop"), np.random.default_rng(1)), second), "seeded"
    only_crop = view(pixels, 1, ("crop",), np.random.default_rng(1))
    assert not np.array_equal(only_crop, pixels) and not np.array_equal(only_crop, pixels[:, ::-1])


def test_views_are_computed_once_beside_each_training_image(project):
    config, dataset = setting(project, feature_cache="memory")
    calls = []
    views = Views(3, ("flip", "crop"), seed=7)
    sets = cached_features(compute_counting(calls), 3, lambda: "m", dataset, UNIT, config,
                           Reporter(stream=io.StringIO(), err=io.StringIO()), views=views)
    training, validation = sets["training"], sets["validation"]
    assert training.features.shape == (8, 4, 3) and training.views == 4
    assert validation.features.shape == (4, 3) and validation.views == 1, "validation images are not augmented"
    assert sum(calls) == 8 * 4 + 4 and max(calls) <= config.batch_size, "each input once, batch_size honoured"
    for index, (path, _) in enumerate(dataset.training.samples):
        pixels = decode(str(path), SIZE)
        own, mirrored = left_minus_right(UNIT.apply(np.stack([pixels, pixels[:, ::-1]])))
        assert np.allclose(training.features[index, 0], own, atol=1e-5) and own.mean() < 0, "view 0: the image"
        assert np.allclose(training.features[index, 1], mirrored, atol=1e-5), "view 1: its mirror image"


def test_each_epoch_trains_on_one_view_per_image_drawn_from_seed_epoch_and_image(project):
    config, dataset = setting(project, feature_cache="memory")
    quiet = Reporter(stream=io.StringIO(), err=io.StringIO())
    sets = cached_features(left_minus_right, 3, lambda: "m", dataset, UNIT, config, quiet,
                           views=Views(3, ("flip", "crop"), seed=7))
    features = sets["training"].features

    def chosen(batch_size, epoch, seed=7):
        """{image: the view the epoch trained on}, found by the features each batch held."""
        views = {}
        for batch, _ in CachedData(sets, batch_size, seed).training(epoch):
            for values in batch:
                [(row, view)] = [(r, v) for r in range(8) for v in range(4) if np.allclose(features[r, v], values)]
                views[row] = view
        return views

    first = chosen(2, epoch=1)
    assert len(first) == 8 and first == chosen(8, epoch=1), "the view does not depend on the batch (or the worker)"
    over_epochs = [chosen(2, epoch) for epoch in range(1, 9)]
    assert len({tuple(sorted(v.items())) for v in over_epochs}) > 1, "other epochs draw other views"
    assert {view for epoch in over_epochs for view in epoch.values()} == {0, 1, 2, 3}, "every view is used"
    assert chosen(2, epoch=1, seed=8) != first, "another seed, other draws"


def test_auto_gives_views_to_small_datasets_only(project):
    config, dataset = setting(project)
    assert view_count(config, dataset) == 3, "4 training images per class"
    assert augmented_views(config, dataset, seed=1) == Views(3, ("flip", "crop"), 1)
    config, _ = setting(project, augmentation=["contrast", "crop"])
    assert augmented_views(config, dataset, seed=1).names == ("contrast", "crop"), "the augmentation listed"
    assert augmented_views(setting(project, fine_tune_layers=2)[0], dataset, seed=1) is None, "the base trains"
    assert augmented_views(setting(project, feature_cache="off")[0], dataset, seed=1) is None
    assert augmented_views(setting(project, augmentation_views=0)[0], dataset, seed=1) is None

    def two_classes(per_class):
        """A dataset index of two classes of ``per_class`` training images each (paths are not read)."""
        from tlcore.dataset import DatasetIndex, Split

        samples = tuple((project.root / f"{i}.jpg", i % 2) for i in range(2 * per_class))
        split = Split("training", project.root, samples)
        return DatasetIndex(labels={"a": 0, "b": 1}, training=split, validation=split)

    counts = {n: view_count(config, two_classes(n)) for n in (10, 25, 26, 33, 34, 50, 51, 500)}
    assert counts == {10: 3, 25: 3, 26: 2, 33: 2, 34: 1, 50: 1, 51: 0, 500: 0}


@pytest.mark.parametrize("value", [-1, 9, "many", 1.5, True])
def test_bad_views_are_one_line(project, value):
    with pytest.raises(ConfigError, match=r'"augmentation_views" is .*; use "auto" or a number of views from 0 to 8'):
        load_config(project.write(augmentation_views=value))


def test_a_run_says_it_trains_on_views(project):
    result, reporter = run_with(project, epochs=2)
    said = reporter.stream.getvalue()
    assert "3 augmented views (flip, crop) of each training image" in said
    assert "on features computed once, one of 4 views of each image per epoch" in said
    assert result.metrics["top_1_accuracy"] == 1.0

    result, reporter = run_with(project, augmentation_views=0, epochs=2)
    said = reporter.stream.getvalue()
    assert "on features computed once\n" in said and "views" not in said


def test_augmentation_with_views_keeps_the_cache():
    from types import SimpleNamespace

    from tlcore.features import can_cache

    config = SimpleNamespace(feature_cache="auto", fine_tune_layers=0, augmentation=("flip",))
    assert can_cache(config, views=2) and not can_cache(config, views=0), "without views: fresh changes each epoch"
    assert not can_cache(SimpleNamespace(feature_cache="auto", fine_tune_layers=3, augmentation=()), views=2)


def test_views_have_their_own_disk_cache(project):
    config, dataset = setting(project, feature_cache="disk")
    quiet = Reporter(stream=io.StringIO(), err=io.StringIO())
    folders = []
    for views in (None, Views(2, ("flip", "crop"), 7), Views(2, ("flip", "crop"), 8), Views(2, ("flip", "crop"), 7)):
        cached_features(left_minus_right, 3, lambda: "m", dataset, UNIT, config, quiet, views=views)
        folders.append(sorted(p.name for p in (config.output_dir / CACHE_FOLDER).glob("features-*")))
    assert len({tuple(f) for f in folders[:3]}) == 3, "other views, other features"
    assert folders[3] == folders[1], "the same views again: reused"
    complete = json.loads((config.output_dir / CACHE_FOLDER / folders[3][0] / "complete.json").read_text())
    assert complete["dim"] == 3
