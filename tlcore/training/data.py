"""What the head trains on: cached features or streamed images, the hold-out early stopping watches, class
weights."""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from tlcore.distributed import SINGLE
from tlcore.errors import ConfigError
from tlcore.features import augmented_views, cached_features, can_cache
from tlcore.loader import Augmentation, ImageBatches, report_undecodable
from tlcore.sampling import epoch_order, sample_keys, stratified, view_choice

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex, Split
    from tlcore.distributed import Cluster
    from tlcore.report import Reporter


def watched_images(config: RunConfig) -> str:
    """What the epochs' ``val_loss`` and ``val_acc`` measure: ``"hold-out"`` (training images early stopping
    watches, :func:`holdout_indices`) or ``"validation"`` (the validation folder)."""
    holdout = config.early_stopping_patience and config.early_stopping_monitor == "holdout"
    return "hold-out" if holdout else "validation"


def holdout_indices(split: Split, fraction: float, seed: int) -> list[int]:
    """A stratified, seeded share of ``split`` held out of training: ``fraction`` of each class, at least one
    image of every class that has two or more."""
    return stratified(split.samples, seed, "holdout", share=fraction)


def class_weights(config: RunConfig, dataset: DatasetIndex) -> np.ndarray | None:
    """One loss weight per output index (``class_weight``), or None for equal weights."""
    import numpy as np

    if config.class_weight is None:
        return None
    weights = np.ones(dataset.num_outputs, dtype=np.float32)
    if config.class_weight == "balanced":
        counts = dataset.training.counts()
        classes = len(counts)
        for label, count in counts.items():
            weights[label] = len(dataset.training) / (classes * count)
        return weights
    assert isinstance(config.class_weight, Mapping)
    for name, weight in config.class_weight.items():
        if name not in dataset.labels:
            close = difflib.get_close_matches(name, list(dataset.labels), n=1)
            hint = f'did you mean "{close[0]}"?' if close else f"classes: {', '.join(sorted(dataset.labels))}"
            raise ConfigError(f'{config.config_file.name}: "class_weight" names "{name}", which is not a class; {hint}')
        weights[dataset.labels[name]] = weight
    return weights


class StreamedData:
    """Images streamed through the whole model every epoch: shuffled per epoch by the seed, and
    randomly augmented when the configuration says so. Skipped images are reported once.

    ``train`` and ``watch`` are the sample indices of the training split that train and, for a
    hold-out, that are watched; without a hold-out the validation split is watched.

    With several workers (``cluster``), each decodes only its part of every batch (:meth:`Cluster.part`), so
    decoding scales with the workers; every worker yields every batch, an empty part too, and its steps are
    :func:`spread` ``parted``.
    """

    cached = False
    views = 1

    def __init__(self, dataset: Any, preprocessing: Any, config: RunConfig, reporter: Reporter, seed: int,
                 train: Sequence[int] | None = None, holdout: Sequence[int] | None = None,
                 cluster: Cluster | None = None) -> None:
        self.cluster = cluster or SINGLE
        self.dataset = dataset
        self.preprocessing = preprocessing
        self.config = config
        self.reporter = reporter
        self.seed = seed
        self.train = list(range(len(dataset.training))) if train is None else list(train)
        self.holdout = holdout
        self.num_train = len(self.train)
        self.num_validation = len(holdout) if holdout is not None else len(dataset.validation)
        self._reported: set[str] = set()

    def training(self, epoch: int, keys: bool = False) -> Iterator[tuple[Any, ...]]:
        """``(images, label ids)`` batches of the epoch; ``keys`` adds each image's :func:`sample_keys`."""
        names = tuple(self.config.augmentation)
        augmentation = Augmentation(names, self.seed, epoch) if names else None
        order = [self.train[i] for i in epoch_order(self.num_train, self.seed, epoch)]
        yield from self._stream(self.dataset.training, order, augmentation, keys=epoch if keys else None)

    def validation(self) -> Iterator[tuple[Any, Any]]:
        if self.holdout is not None:
            yield from self._stream(self.dataset.training, self.holdout, None, name="holdout")
        else:
            yield from self._stream(self.dataset.validation, None, None)

    def _stream(self, split: Any, order: Any, augmentation: Any, name: str | None = None,
                keys: int | None = None) -> Iterator[tuple[Any, ...]]:
        batches = ImageBatches(split, self.preprocessing, self.config.batch_size, order=order,
                               augmentation=augmentation, bad_images=self.config.bad_images,
                               part=self.cluster.part if self.cluster.size > 1 else None)  # this worker's part
        for batch in batches:
            if keys is None:
                yield batch.images, batch.labels
            else:
                yield batch.images, batch.labels, sample_keys(self.seed, keys, batch.indices)
        if (name or split.name) not in self._reported:
            self._reported.add(name or split.name)
            undecodable = sorted(batches.undecodable)
            if self.cluster.size > 1:  # each worker knows its part's
                undecodable = sorted(entry for part in self.cluster.gather(undecodable) for entry in part)
            report_undecodable(split, undecodable, self.reporter)


class CachedData:
    """Features computed once (:func:`tlcore.features.cached_features`), batched for the head; the
    hold-out, if any, is a part of the training rows."""

    cached = True

    def __init__(self, sets: Mapping[str, Any], batch_size: int, seed: int, holdout: Sequence[int] | None = None) -> None:
        import numpy as np

        self.views = sets["training"].views
        self.batch_size = batch_size
        self.seed = seed
        self.sets = sets
        training = sets["training"]
        if holdout is not None:
            held = np.asarray(holdout, dtype=np.int64)
            self.train_set = replace(training, rows=np.setdiff1d(training.rows, held))
            self.watch_set = replace(training, rows=np.intersect1d(training.rows, held))
        else:
            self.train_set, self.watch_set = training, sets["validation"]
        self.num_train = len(self.train_set)
        self.num_validation = len(self.watch_set)

    def training(self, epoch: int, keys: bool = False) -> Iterator[tuple[Any, ...]]:
        """``(features, label ids)`` batches of the epoch; ``keys`` adds each image's :func:`sample_keys`."""
        order = epoch_order(self.num_train, self.seed, epoch)
        view_of = view_choice(len(self.train_set.labels), self.views, self.seed, epoch)
        for features, labels, rows in self.train_set.batches(self.batch_size, order, with_rows=True, view_of=view_of):
            yield (features, labels, sample_keys(self.seed, epoch, rows)) if keys else (features, labels)

    def validation(self) -> Iterator[tuple[Any, Any]]:
        yield from self.watch_set.batches(self.batch_size)


def training_data(dataset: Any, preprocessing: Any, config: RunConfig, reporter: Reporter, seed: int, *,
                  compute: Callable[[Any], Any], dim: int, model_key: Callable[[], str], frozen: bool | None = None,
                  holdout: Sequence[int] | None = None, cluster: Cluster | None = None) -> StreamedData | CachedData:
    """The data a trainer iterates: features computed once when the base is frozen and images are
    not augmented, or augmented by views computed once (:func:`tlcore.features.can_cache`), else images
    streamed every epoch.

    ``compute``, ``dim`` and ``model_key`` describe the feature extractor, as for
    :func:`tlcore.features.cached_features`. ``frozen`` says whether the base is frozen in this
    phase (default: when ``fine_tune_layers`` is 0). ``holdout`` lists training images watched
    instead of the validation images. With several workers (``cluster``), each computes the features of
    its share of the images.
    """
    views = augmented_views(config, dataset, seed, frozen)
    if can_cache(config, frozen, views.count if views else 0):
        sets = cached_features(compute, dim, model_key, dataset, preprocessing, config, reporter,
                               cluster or SINGLE, views=views)
        return CachedData(sets, config.batch_size, seed, holdout)
    train = None
    if holdout is not None:
        held = set(holdout)
        train = [i for i in range(len(dataset.training)) if i not in held]
    return StreamedData(dataset, preprocessing, config, reporter, seed, train=train, holdout=holdout, cluster=cluster)
