"""What every framework's trainer shares: epoch lines, live progress, observer events, shuffling.

A trainer computes; :class:`TrainingLoop` shows it the same way for every
framework (``Epoch 3/10``, a live line of images/s with ``loss`` and ``acc``, then
``loss - acc - val_loss - val_acc``) and tells observer plugins about each epoch.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

if TYPE_CHECKING:
    import numpy as np

    from tlcore.calls import Hooks
    from tlcore.config import RunConfig
    from tlcore.report import Progress, Reporter


class RunEvents:
    """Handed to the trainer so that observer plugins hear about epochs; keeps the epoch history."""

    def __init__(self, hooks: Hooks, config: RunConfig):
        self._hooks = hooks
        self._config = config
        self.history: list[dict[str, float]] = []

    def epoch_start(self, epoch: int) -> None:
        self._hooks.all("tl_on_epoch_start", config=self._config, epoch=epoch, epochs=self._config.epochs)

    def epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None:
        values = {name: float(value) for name, value in logs.items()}
        self.history.append({"epoch": epoch, **values})
        self._hooks.all("tl_on_epoch_end", config=self._config, epoch=epoch, epochs=self._config.epochs, logs=values)


def run_seed(config: RunConfig) -> int:
    """The seed of the run's random draws: the configured ``seed``, or a fresh one per run."""
    return config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """A random order of ``count`` items for ``epoch``, determined by ``seed`` and the epoch alone."""
    import numpy as np

    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(count)


class TrainingLoop:
    """Epochs as the user sees them, for any framework's training loop::

        loop = TrainingLoop(reporter, events, config.epochs, num_train, num_validation)
        for epoch in loop:
            for images, labels in training_batches:
                loss, correct = train_step(images, labels)
                loop.trained(len(labels), loss, correct)
            for images, labels in validation_batches:
                loss, correct = test_step(images, labels)
                loop.validated(len(labels), loss, correct)
            loop.end_epoch()

    ``loss`` is the batch's mean loss and ``correct`` its number of right answers;
    the epoch's ``loss``/``acc``/``val_loss``/``val_acc`` are their means over images.
    """

    def __init__(self, reporter: Reporter, events: RunEvents, epochs: int, num_train: int, num_validation: int):
        self.reporter = reporter
        self.events = events
        self.epochs = epochs
        self.num_train = num_train
        self.num_validation = num_validation
        self.epoch = 0
        self._sums: dict[str, float] = {}
        self._bar: Progress | None = None
        self._val_bar: Progress | None = None

    def __iter__(self) -> Iterator[int]:
        for epoch in range(1, self.epochs + 1):
            self.epoch = epoch
            self.reporter.info(f"Epoch {epoch}/{self.epochs}")
            self.events.epoch_start(epoch)
            self._sums = dict.fromkeys(("n", "loss", "correct", "val_n", "val_loss", "val_correct"), 0.0)
            self._bar = self.reporter.progress(self.num_train, unit="img")
            self._val_bar = None
            yield epoch

    def trained(self, count: int, loss: float, correct: float) -> None:
        """A training batch of ``count`` images is done."""
        sums = self._sums
        sums["n"] += count
        sums["loss"] += float(loss) * count
        sums["correct"] += float(correct)
        assert self._bar is not None
        self._bar.update(int(sums["n"]), loss=sums["loss"] / sums["n"], acc=sums["correct"] / sums["n"])

    def validated(self, count: int, loss: float, correct: float) -> None:
        """A validation batch of ``count`` images is done."""
        sums = self._sums
        if self._val_bar is None:
            self._val_bar = self.reporter.progress(self.num_validation, label="validation ", unit="img")
        sums["val_n"] += count
        sums["val_loss"] += float(loss) * count
        sums["val_correct"] += float(correct)
        self._val_bar.update(int(sums["val_n"]))

    def logs(self) -> dict[str, float]:
        """The epoch's metrics so far: ``loss``, ``acc`` and, after validation, ``val_loss``, ``val_acc``."""
        sums = self._sums
        logs: dict[str, float] = {}
        if sums["n"]:
            logs.update(loss=sums["loss"] / sums["n"], acc=sums["correct"] / sums["n"])
        if sums["val_n"]:
            logs.update(val_loss=sums["val_loss"] / sums["val_n"], val_acc=sums["val_correct"] / sums["val_n"])
        return logs

    def end_epoch(self) -> dict[str, float]:
        """Print the epoch's line, tell observers, and return its metrics."""
        logs = self.logs()
        assert self._bar is not None
        self._bar.done = self.num_train
        self._bar.finish(**logs)
        self.events.epoch_end(self.epoch, logs)
        return logs


def run_epochs(loop: TrainingLoop, train_batches: Callable[[int], Iterator[tuple[Any, Any]]],
               validation_batches: Callable[[], Iterator[tuple[Any, Any]]],
               train_step: Callable[[Any, Any], tuple[float, float]],
               test_step: Callable[[Any, Any], tuple[float, float]]) -> None:
    """The usual loop over ``loop``'s epochs: ``train_batches(epoch)`` through ``train_step``,
    then ``validation_batches()`` through ``test_step``; each step returns ``(mean loss, correct)``."""
    for epoch in loop:
        for images, labels in train_batches(epoch):
            loss, correct = train_step(images, labels)
            loop.trained(len(labels), loss, correct)
        for images, labels in validation_batches():
            loss, correct = test_step(images, labels)
            loop.validated(len(labels), loss, correct)
        loop.end_epoch()


class StreamedData:
    """Images streamed through the whole model every epoch: shuffled per epoch by the seed, and
    randomly augmented when the configuration says so. Skipped images are reported once."""

    cached = False

    def __init__(self, dataset: Any, preprocessing: Any, config: RunConfig, reporter: Reporter, seed: int):
        self.dataset = dataset
        self.preprocessing = preprocessing
        self.config = config
        self.reporter = reporter
        self.seed = seed
        self.num_train = len(dataset.training)
        self.num_validation = len(dataset.validation)
        self._reported: set[str] = set()

    def training(self, epoch: int) -> Iterator[tuple[Any, Any]]:
        from tlcore.loader import Augmentation

        augmentation = Augmentation(tuple(self.config.augmentation), self.seed, epoch) if self.config.augmentation else None
        order = epoch_order(self.num_train, self.seed, epoch)
        yield from self._stream(self.dataset.training, order, augmentation)

    def validation(self) -> Iterator[tuple[Any, Any]]:
        yield from self._stream(self.dataset.validation, None, None)

    def _stream(self, split: Any, order: Any, augmentation: Any) -> Iterator[tuple[Any, Any]]:
        from tlcore.loader import ImageBatches, report_undecodable

        batches = ImageBatches(split, self.preprocessing, self.config.batch_size, order=order,
                               augmentation=augmentation, bad_images=self.config.bad_images)
        for batch in batches:
            yield batch.images, batch.labels
        if split.name not in self._reported:
            self._reported.add(split.name)
            report_undecodable(split, sorted(batches.undecodable), self.reporter)


class CachedData:
    """Features computed once (:func:`tlcore.features.cached_features`), batched for the head."""

    cached = True

    def __init__(self, sets: Mapping[str, Any], batch_size: int, seed: int):
        self.sets = sets
        self.batch_size = batch_size
        self.seed = seed
        self.num_train = len(sets["training"])
        self.num_validation = len(sets["validation"])

    def training(self, epoch: int) -> Iterator[tuple[Any, Any]]:
        yield from self.sets["training"].batches(self.batch_size, epoch_order(self.num_train, self.seed, epoch))

    def validation(self) -> Iterator[tuple[Any, Any]]:
        yield from self.sets["validation"].batches(self.batch_size)


def training_data(dataset: Any, preprocessing: Any, config: RunConfig, reporter: Reporter, seed: int, *,
                  compute: Callable[[Any], Any], dim: int, model_key: Callable[[], str]) -> StreamedData | CachedData:
    """The data a trainer iterates: features computed once when the base is frozen and images are
    not augmented (:func:`tlcore.features.can_cache`), else images streamed every epoch.

    ``compute``, ``dim`` and ``model_key`` describe the feature extractor, as for
    :func:`tlcore.features.cached_features`.
    """
    from tlcore.features import can_cache, cached_features

    if can_cache(config):
        sets = cached_features(compute, dim, model_key, dataset, preprocessing, config, reporter)
        return CachedData(sets, config.batch_size, seed)
    return StreamedData(dataset, preprocessing, config, reporter, seed)


def announce_training(reporter: Reporter, config: RunConfig, num_outputs: int, base_name: str, base_layers: int,
                      cached: bool) -> None:
    """The line before the first epoch: what is trained, on what, how."""
    tuned = min(config.fine_tune_layers, base_layers)
    if not tuned:
        base = "frozen"
    elif tuned == base_layers:
        base = f"all {tuned} layers trainable of"
    else:
        base = f"last {tuned} layers trainable of"
    epochs = f"{config.epochs} epoch{'s' if config.epochs > 1 else ''}"
    reporter.info(
        f"Training a {num_outputs}-way head on {base} {base_name}: {epochs}, batch size {config.batch_size}"
        + (", on features computed once" if cached else "")
        + (f", augmentation: {', '.join(config.augmentation)}" if config.augmentation else "")
    )
