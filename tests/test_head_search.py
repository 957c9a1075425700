"""The head search (tlcore.head_search): candidates, folds, and what it chooses, on numpy features alone."""

from dataclasses import dataclass, field

import numpy as np
import pytest

from tlcore import head_search
from tlcore.features import FeatureSet
from tlcore.head_search import (
    GRID, SEARCHED_KEYS, HeadBatch, Settings, candidates, cross_validate, search_enabled, search_head,
    stratified_folds,
)


@dataclass
class Config:
    """The keys the search reads, as a RunConfig has them."""

    learning_rate: float = 0.001
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    epochs: int = 10
    dropout: float = 0.2
    batch_size: int = 32
    head_search: object = "auto"
    given_keys: frozenset = field(default_factory=frozenset)


class Reporter:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)

    def progress(self, total, label="", unit="", delay=0.0):
        class Bar:
            def update(self, *args, **kwargs):
                pass

            def finish(self, *args, **kwargs):
                pass

        return Bar()


def blobs(per_class, classes=4, dim=64, spread=1.0, seed=0, views=0):
    """Gaussian clusters, one per class (non-negative like pooled ReLU features), optionally with views."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 3, (classes, dim))
    labels = np.repeat(np.arange(classes), per_class)
    features = centres[labels] + rng.normal(0, spread, (len(labels), dim))
    if views:
        features = np.stack([features] + [features + rng.normal(0, 0.3 * spread, features.shape)
                                          for _ in range(views)], axis=1)
    return np.maximum(features, 0).astype(np.float32), labels


def test_every_combination_of_the_grid_is_tried_and_the_configured_values_are_among_them():
    tried = candidates(Config())
    assert len(tried) == len(set(tried)) >= 12
    assert Settings(0.001, 0.0, 0.0) in tried
    assert {s.learning_rate for s in tried} == set(GRID["learning_rate"]) | {0.001}


def test_keys_the_configuration_sets_stay_as_they_are():
    config = Config(learning_rate=0.02, label_smoothing=0.05, given_keys=frozenset({"learning_rate",
                                                                                    "label_smoothing"}))
    tried = candidates(config)
    assert {s.learning_rate for s in tried} == {0.02} and {s.label_smoothing for s in tried} == {0.05}
    assert {s.weight_decay for s in tried} == set(GRID["weight_decay"])
    features, labels = blobs(12)
    result = search_head(FeatureSet(features, labels, np.arange(len(labels))), 4, config, 1, None, Reporter())
    assert result.chosen["learning_rate"] == 0.02 and result.chosen["label_smoothing"] == 0.05
    assert result.fixed == ("learning_rate", "label_smoothing")


def test_the_search_is_off_when_told_or_when_nothing_is_left_to_choose_or_features_are_not_cached():
    assert search_enabled(Config(), cached=True)
    assert not search_enabled(Config(), cached=False)
    assert not search_enabled(Config(head_search=False), cached=True)
    assert not search_enabled(Config(given_keys=frozenset(SEARCHED_KEYS)), cached=True)


def test_folds_hold_every_class_in_equal_shares_and_depend_on_the_seed_alone():
    labels = np.repeat(np.arange(3), [10, 7, 3])
    folds = stratified_folds(labels, 3, seed=5)
    for label in range(3):
        shares = np.bincount(folds[labels == label], minlength=3)
        assert shares.max() - shares.min() <= 1, "each class dealt round the folds"
    assert np.array_equal(folds, stratified_folds(labels, 3, seed=5))
    assert not np.array_equal(folds, stratified_folds(labels, 3, seed=6))
    assert abs(np.bincount(folds).max() - np.bincount(folds).min()) <= 1, "folds of even size"


def test_heads_trained_together_learn_each_as_their_settings_say():
    features, labels = blobs(20, spread=0.5)
    settings = [Settings(0.01, 0.0, 0.0), Settings(1e-6, 0.0, 0.0)]
    heads = HeadBatch(settings, features.shape[1], 4, seed=0, class_weights=None, dropout=0.0)
    for _ in range(30):
        heads.train(features, labels)
    accuracy = (heads.scores(features).argmax(axis=2) == labels[:, None]).mean(axis=0)
    assert accuracy[0] == 1.0 and accuracy[1] < 0.9, "a tiny learning rate barely moves its head"


def test_weight_decay_keeps_the_kernel_small_and_label_smoothing_keeps_scores_from_saturating():
    features, labels = blobs(20, spread=0.3)
    settings = [Settings(0.01, 0.0, 0.0), Settings(0.01, 0.1, 0.0), Settings(0.01, 0.0, 0.3)]
    heads = HeadBatch(settings, features.shape[1], 4, seed=0, class_weights=None, dropout=0.0)
    for _ in range(200):
        heads.train(features, labels)
    norms = np.linalg.norm(heads.kernel.reshape(features.shape[1], 3, 4), axis=(0, 2))
    assert norms[1] < 0.5 * norms[0]
    top = heads.scores(features).max(axis=2).mean(axis=0)
    assert top[0] > 0.99 and top[2] < 0.9


def test_out_of_fold_scores_are_of_heads_that_never_saw_the_image():
    features, labels = blobs(10, classes=2)
    labels_flipped = labels.copy()
    labels_flipped[0] = 1  # a class-0 picture labelled 1: only a head that trained on it could believe that
    folds = stratified_folds(labels_flipped, 5, seed=0)
    measured = cross_validate(features, labels_flipped, 2, [Settings(0.01, 0.0, 0.0)], folds, epochs=20,
                              batch_size=8, seed=0, dropout=0.0, keep_scores=(0, 19))
    assert measured["scores"][0].argmax() == 0
    assert measured["correct"].shape == (1, 20)


def test_the_search_beats_the_fixed_defaults_where_they_undertrain_and_reports_what_it_tried():
    features, labels = blobs(15, classes=5, dim=128, spread=2.5, seed=3, views=2)
    training = FeatureSet(features, labels, np.arange(len(labels)))
    reporter = Reporter()
    result = search_head(training, 5, Config(), 7, None, reporter)
    best = max(result.tried, key=lambda row: (row["cv_accuracy"], -row["cv_loss"]))
    assert result.chosen == {key: best[key] for key in SEARCHED_KEYS}
    assert best["cv_accuracy"] >= result.default_accuracy
    assert len(result.tried) >= 12 and result.folds == 5 and result.images == len(labels)
    assert reporter.lines and reporter.lines[-1].startswith("Head search: ")
    again = search_head(training, 5, Config(), 7, None, Reporter())
    assert again.chosen == result.chosen, "the same seed, the same choice"
    record = result.to_dict()
    assert head_search.SearchResult.from_dict(record).chosen == result.chosen


def test_set_epochs_beyond_the_searched_ones_are_kept():
    features, labels = blobs(10, classes=2, dim=8)
    config = Config(epochs=500, given_keys=frozenset({"epochs"}))
    result = search_head(FeatureSet(features, labels, np.arange(len(labels))), 2, config, 0, None, Reporter())
    assert result.chosen["epochs"] == 500
    assert {row["epochs"] for row in result.tried} == {head_search.MAX_EPOCHS}, "compared at the last epoch searched"


def test_a_large_training_set_is_searched_on_a_stratified_sample(monkeypatch):
    monkeypatch.setattr(head_search, "SEARCH_IMAGES", 60)
    features, labels = blobs(50, classes=4, dim=16)
    result = search_head(FeatureSet(features, labels, np.arange(len(labels))), 4,
                         Config(given_keys=frozenset({"epochs", "label_smoothing"})), 0, None, Reporter())
    assert result.images == 60
    assert np.all(np.bincount(labels[result.rows]) == 15)


@pytest.mark.parametrize("weights", [None, np.array([1.0, 1.0, 4.0], dtype=np.float32)])
def test_class_weights_count_in_the_search_as_in_training(weights):
    features, labels = blobs(8, classes=3, dim=16)
    result = search_head(FeatureSet(features, labels, np.arange(len(labels))), 3,
                         Config(given_keys=frozenset({"label_smoothing"})), 0, weights, Reporter())
    assert 0.0 <= max(row["cv_accuracy"] for row in result.tried) <= 1.0
