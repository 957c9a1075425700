"""How a classification head is trained, the same for every framework.

The core owns the training policy: which images train and which are watched
(a hold-out for early stopping), features computed once for a frozen base,
the phases (head first, then fine-tuning), the learning-rate schedule, class
weights, early stopping with the best weights restored, the epoch lines and live
progress, and the observer events. A framework owns only the tensors: it gives
:func:`fit` a :class:`Trainable` (features of a batch, a training and a test step,
saving and restoring weights). The fake framework of the tests shows that a
trainer may also use the pieces (:func:`training_data`, :class:`TrainingLoop`)
directly.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol, Sequence

from tlcore.head_search import search_enabled
from tlcore.sampling import epoch_order, run_seed, sample_keys, view_choice

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from tlcore.calls import Hooks
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex, Split
    from tlcore.distributed import Cluster
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Progress, Reporter


def two_phase(config: RunConfig) -> bool:
    """Whether the head trains first on the frozen base, then the last layers are fine-tuned."""
    return config.fine_tune_layers > 0 and config.fine_tune_epochs > 0


def total_epochs(config: RunConfig) -> int:
    return config.epochs + (config.fine_tune_epochs if two_phase(config) else 0)


class RunEvents:
    """Handed to the trainer so that observer plugins hear about epochs; keeps the epoch history,
    and what early stopping did (:attr:`early_stopping`)."""

    def __init__(self, hooks: Hooks, config: RunConfig):
        self._hooks = hooks
        self._config = config
        self.history: list[dict[str, float]] = []
        self.early_stopping: dict[str, Any] | None = None
        from tlcore.distributed import SINGLE

        self.cluster = SINGLE
        """The run's workers (:class:`tlcore.distributed.Cluster`): :func:`fit` spreads the work over them."""
        self.checkpoint: Checkpoint | None = None
        """Where :func:`fit` saves the state after every epoch, and what it resumes from (``tl run --resume``)."""
        self.check_only = False
        """``tl check``: :func:`fit` computes the features, searches the head and checks the data, and trains
        nothing."""
        self.health: Any = None
        """The :class:`tlcore.health.HealthReport` of the run's data check (``data_check``), on the chief."""
        self.head_search: Any = None
        """The :class:`tlcore.head_search.SearchResult` of the run's head search, when it searched."""
        self.validation_scores: tuple[Any, Any] | None = None
        """``(rows, scores)``: the trained classifier's scores of the validation images, when the trainer
        had their features already (then the core does not run the images through the model again)."""

    def settle(self, config: RunConfig) -> None:
        """Observers hear the epochs of ``config`` from now on (the head search chose its epochs)."""
        self._config = config

    def epoch_start(self, epoch: int) -> None:
        self._hooks.all("tl_on_epoch_start", config=self._config, epoch=epoch, epochs=total_epochs(self._config))

    def epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None:
        values = {name: float(value) for name, value in logs.items()}
        self.history.append({"epoch": epoch, **values})
        self._hooks.all("tl_on_epoch_end", config=self._config, epoch=epoch, epochs=total_epochs(self._config),
                        logs=values)


def watched_images(config: RunConfig) -> str:
    """What the epochs' ``val_loss`` and ``val_acc`` measure: ``"hold-out"`` (training images early stopping
    watches, :func:`holdout_indices`) or ``"validation"`` (the validation folder)."""
    holdout = config.early_stopping_patience and config.early_stopping_monitor == "holdout"
    return "hold-out" if holdout else "validation"


def holdout_indices(split: Split, fraction: float, seed: int) -> list[int]:
    """A stratified, seeded share of ``split`` held out of training: ``fraction`` of each class, at least one
    image of every class that has two or more."""
    import numpy as np

    rng = np.random.default_rng([seed, 0x401D])
    by_label: dict[int, list[int]] = {}
    for index, (_, label) in enumerate(split.samples):
        by_label.setdefault(label, []).append(index)
    chosen: list[int] = []
    for _, indices in sorted(by_label.items()):
        if len(indices) >= 2:
            count = min(len(indices) - 1, max(1, round(fraction * len(indices))))
            chosen += [int(i) for i in rng.choice(indices, size=count, replace=False)]
    return sorted(chosen)


def class_weights(config: RunConfig, dataset: DatasetIndex) -> np.ndarray | None:
    """One loss weight per output index (``class_weight``), or None for equal weights."""
    import numpy as np

    from tlcore.errors import ConfigError

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
            import difflib

            close = difflib.get_close_matches(name, list(dataset.labels), n=1)
            hint = f'did you mean "{close[0]}"?' if close else f"classes: {', '.join(sorted(dataset.labels))}"
            raise ConfigError(f'{config.config_file.name}: "class_weight" names "{name}", which is not a class; {hint}')
        weights[dataset.labels[name]] = weight
    return weights


class LearningRate:
    """The learning rate at each step: a linear warm-up, then constant or a cosine decay to 0."""

    def __init__(self, rate: float, schedule: str, warmup_epochs: int, epochs: int, steps_per_epoch: int):
        self.rate = rate
        self.schedule = schedule
        self.steps = max(1, steps_per_epoch)
        self.warmup = min(warmup_epochs, epochs) * self.steps
        self.total = epochs * self.steps

    @property
    def varies(self) -> bool:
        return self.schedule != "constant" or self.warmup > 0

    def __call__(self, step: int) -> float:
        """The rate of training step ``step`` (0-based over the phase)."""
        if step < self.warmup:
            return self.rate * (step + 1) / self.warmup
        if self.schedule == "cosine":
            progress = (step - self.warmup) / max(1, self.total - self.warmup)
            return self.rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return self.rate


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
    The loop runs epochs ``first`` to ``last`` of ``epochs`` in all. With ``patience``,
    it stops once ``val_loss`` has not improved for that many epochs, keeps the best
    epoch's weights through ``snapshot`` and gives them back through ``restore``.
    """

    def __init__(self, reporter: Reporter, events: RunEvents, epochs: int, num_train: int, num_validation: int, *,
                 first: int = 1, last: int | None = None, note: str = "", patience: int = 0,
                 snapshot: Callable[[], Any] | None = None, restore: Callable[[Any], None] | None = None,
                 watched: str = "validation"):
        self.reporter = reporter
        self.watched = watched
        self.events = events
        self.epochs = epochs
        self.first = first
        self.last = epochs if last is None else last
        self.note = note
        self.num_train = num_train
        self.num_validation = num_validation
        self.patience = patience
        self.snapshot = snapshot
        self.restore = restore
        self.epoch = 0
        self.best: tuple[float, int, Any, dict[str, float]] | None = None
        self._sums: dict[str, float] = {}
        self._bar: Progress | None = None
        self._val_bar: Progress | None = None

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self.first, self.last + 1):
            if self._stop():  # a resumed run whose early stopping had already decided
                break
            self.epoch = epoch
            self.reporter.info(f"Epoch {epoch}/{self.epochs}" + (f" ({self.note})" if self.note else ""))
            self.events.epoch_start(epoch)
            self._sums = dict.fromkeys(("n", "loss", "correct", "val_n", "val_loss", "val_correct"), 0.0)
            self._bar = self.reporter.progress(self.num_train, unit="img")
            self._val_bar = None
            yield epoch
            if self._stop():
                break
        self._restore_best()

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
            self._val_bar = self.reporter.progress(self.num_validation, label=f"{self.watched} ", unit="img")
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
        if self.patience and "val_loss" in logs and (self.best is None or logs["val_loss"] < self.best[0]):
            state = self.snapshot() if self.snapshot is not None else None
            self.best = (logs["val_loss"], self.epoch, state, logs)
        return logs

    def _stop(self) -> bool:
        return bool(self.patience and self.best is not None and self.epoch - self.best[1] >= self.patience)

    def _restore_best(self) -> None:
        if not self.patience or self.best is None:
            return
        _, epoch, state, logs = self.best
        stopped = self.epoch < self.last
        if epoch != self.epoch and self.restore is not None:
            self.restore(state)
        self.reporter.info(
            ("Early stopping: no improvement for " f"{self.patience} epochs. " if stopped else "")
            + f"Kept the weights of epoch {epoch} (val_loss {logs['val_loss']:.4f}, val_acc {logs['val_acc']:.4f})"
        )
        self.events.early_stopping = {"best_epoch": epoch, "stopped_after_epoch": self.epoch,
                                      "val_loss": logs["val_loss"], "val_acc": logs["val_acc"]}


def run_epochs(loop: TrainingLoop, train_batches: Callable[[int], Iterator[tuple[Any, Any]]],
               validation_batches: Callable[[], Iterator[tuple[Any, Any]]],
               train_step: Callable[..., tuple[float, ...]],
               test_step: Callable[..., tuple[float, ...]],
               learning_rate: LearningRate | None = None,
               set_learning_rate: Callable[[float], None] | None = None, *, first_step: int = 0,
               after_epoch: Callable[[int, int], None] | None = None) -> None:
    """The usual loop over ``loop``'s epochs: ``train_batches(epoch)`` through ``train_step``,
    then ``validation_batches()`` through ``test_step``; each step returns ``(mean loss, correct)``, or
    ``(mean loss, correct, images)`` when it was given a part of the batch (:func:`spread` ``parted``).
    With a varying ``learning_rate``, ``set_learning_rate`` is called before every training step
    (counted from ``first_step``). ``after_epoch(epoch, steps done)`` follows every epoch."""
    step = first_step
    for epoch in loop:
        for batch in train_batches(epoch):  # (images, labels), or (images, labels, per-image keys)
            if learning_rate is not None and learning_rate.varies and set_learning_rate is not None:
                set_learning_rate(learning_rate(step))
            result = train_step(*batch)  # (loss, correct), or a step spread over parts adds the batch's size
            step += 1
            loop.trained(int(result[2]) if len(result) > 2 else len(batch[1]), result[0], result[1])
        for images, labels in validation_batches():
            result = test_step(images, labels)
            loop.validated(int(result[2]) if len(result) > 2 else len(labels), result[0], result[1])
        loop.end_epoch()
        if after_epoch is not None:
            after_epoch(epoch, step)


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
                 cluster: Cluster | None = None):
        from tlcore.distributed import SINGLE

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
        from tlcore.loader import Augmentation

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
        from tlcore.loader import ImageBatches, report_undecodable

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

    def __init__(self, sets: Mapping[str, Any], batch_size: int, seed: int, holdout: Sequence[int] | None = None):
        import numpy as np
        from dataclasses import replace

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
        import numpy as np

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
    from tlcore.distributed import SINGLE
    from tlcore.features import augmented_views, can_cache, cached_features

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


def announce_training(reporter: Reporter, config: RunConfig, num_outputs: int, base_name: str, base_layers: int,
                      cached: bool, tuned: int | None = None, epochs: int | None = None, views: int = 0) -> None:
    """The line before the first epoch (of a phase): what is trained, on what, how."""
    tuned = min(config.fine_tune_layers if tuned is None else tuned, base_layers)
    count = config.epochs if epochs is None else epochs
    if not tuned:
        base = "frozen"
    elif tuned == base_layers:
        base = f"all {tuned} layers trainable of"
    else:
        base = f"last {tuned} layers trainable of"
    epochs_text = f"{count} epoch{'s' if count > 1 else ''}"
    reporter.info(
        f"Training a {num_outputs}-way head on {base} {base_name}: {epochs_text}, batch size {config.batch_size}"
        + (", on features computed once" if cached else "")
        + (f", one of {views + 1} views of each image per epoch" if views else "")
        + (f", augmentation: {', '.join(config.augmentation)}" if config.augmentation and not views else "")
    )


class Steps(Protocol):
    """A framework's training and test steps for one phase (see :class:`Trainable`).

    ``snapshot()``/``restore(state)`` keep and give back the trained weights (early stopping). Steps may
    also have ``state()``/``load_state(state)``: weights and optimizer state, picklable, which a checkpoint
    keeps so that a resumed run continues exactly (without them it resumes the weights only).

    With several workers (``events.cluster``), ``train`` and ``test`` get this worker's part of each
    batch and return ``(its share of the batch's mean loss, its number correct)``: the framework divides
    its part's loss by the whole batch's size (or weight) and adds the gradients up over the workers with
    its engine's all-reduce before the update, so that every worker takes the same step.
    """

    def train(self, images: Any, labels: Any) -> tuple[float, float]: ...

    def test(self, images: Any, labels: Any) -> tuple[float, float]: ...

    def set_learning_rate(self, rate: float) -> None: ...

    def snapshot(self) -> Any: ...

    def restore(self, state: Any) -> None: ...


def spread(cluster: Cluster, step: Callable[..., tuple[float, float]],
           parted: bool = False) -> Callable[..., tuple[float, ...]]:
    """A step over a whole batch, done by all the workers: each gives ``step`` its part of the batch, and
    gets back its share of the batch's mean loss (the framework's steps add the gradients up over the
    workers); the shares and the right answers are added up, so every worker sees the batch's figures.
    ``parted``: each worker is given only its part (:class:`StreamedData`), and the step also returns the
    batch's size, added up over the workers."""

    def spread_step(inputs: Any, labels: Any, *keys: Any) -> tuple[float, ...]:
        if parted:
            share, correct = step(inputs, labels, *keys)
            loss, right, count = cluster.sum([share, correct, len(labels)])
            return loss, right, int(count)
        part = cluster.part(len(labels))
        share, correct = step(inputs[part], labels[part], *(key[part] for key in keys))
        loss, right = cluster.sum([share, correct])
        return loss, right

    return spread_step


def _state(steps: Steps) -> Any:
    """What a checkpoint keeps of a phase's steps: their whole state (weights and optimizer) when they can give
    it (``state()``), else their weights (``snapshot()``)."""
    state = getattr(steps, "state", None)
    return ("state", state()) if callable(state) else ("snapshot", steps.snapshot())


def _load_state(steps: Steps, saved: Any) -> None:
    kind, state = saved
    if kind == "state" and callable(getattr(steps, "load_state", None)):
        steps.load_state(state)  # type: ignore[attr-defined]
    else:
        steps.restore(state if kind == "snapshot" else state["weights"])


CHECKPOINT_FOLDER = ".tl-checkpoint"
CHECKPOINT_FILE = "state.pickle"


class Checkpoint:
    """The state of a run after its last finished epoch, in ``output_dir/.tl-checkpoint/``: the seed, the
    phase, the history, the trained weights and the optimizer's state. Saved atomically after every epoch,
    removed when the run has written its outputs; ``tl run --resume`` continues from it.

    ``fingerprint`` identifies what was trained (the keys that shape the model, and the images): a
    checkpoint is resumed only while it holds.
    """

    def __init__(self, folder: Path, fingerprint: str, resumed: dict[str, Any] | None = None):
        self.folder = folder
        self.fingerprint = fingerprint
        self.resumed = resumed
        self.epoch: int | None = resumed["epoch"] if resumed is not None else None
        """The epoch of the state saved last (what ``--resume`` continues after), or None."""

    @classmethod
    def open(cls, config: RunConfig, dataset: DatasetIndex, reporter: Reporter, resume: bool,
             restartable: bool = False) -> Checkpoint:
        """The run's checkpoint: with ``resume``, the interrupted run's (checked); else a fresh one.

        With ``restartable`` (a run of several workers, which the engine or the cluster's scheduler restarts
        after a failure: torchrun's ``--max-restarts``, a Kubernetes Job), an interrupted run's checkpoint of
        the same training is resumed without ``--resume``, as Keras' ``BackupAndRestore`` does; another
        training's is removed.

        :raises ConfigError: with ``resume``, when there is nothing to resume, or it was another training.
        """
        import shutil
        from datetime import datetime

        from tlcore.errors import ConfigError

        folder = config.output_dir / CHECKPOINT_FOLDER
        fingerprint = training_fingerprint(config, dataset)
        saved = cls._read(folder / CHECKPOINT_FILE)
        if restartable and not resume and saved is not None and saved.get("fingerprint") == fingerprint:
            reporter.info(f"Resuming after epoch {saved['epoch']} of {saved['epochs']}: a run of several workers "
                          "continues from the checkpoint the interrupted one left (the workers were restarted)")
            return cls(folder, fingerprint, saved)
        if not resume:
            if saved is not None:
                reporter.info(f"Starting over: removing the checkpoint an interrupted run left after epoch "
                              f"{saved['epoch']} (tl run --resume continues such a run)")
            shutil.rmtree(folder, ignore_errors=True)
            return cls(folder, fingerprint)
        if saved is None:
            raise ConfigError(f"nothing to resume in {config.output_dir}: no interrupted run left a checkpoint "
                              f"there ({CHECKPOINT_FOLDER}/); run without --resume")
        if saved.get("fingerprint") != fingerprint:
            raise ConfigError(f"{config.config_file.name}: the configuration or the training images changed since "
                              f"the interrupted run (its checkpoint is of epoch {saved['epoch']}); set them back to "
                              "resume it, or run without --resume to start over")
        when = datetime.fromtimestamp((folder / CHECKPOINT_FILE).stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        reporter.info(f"Resuming after epoch {saved['epoch']} of {saved['epochs']} (checkpoint of {when})")
        return cls(folder, fingerprint, saved)

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        import pickle

        try:
            with open(path, "rb") as handle:
                state = pickle.load(handle)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a damaged checkpoint: as if there were none
            return None
        return state if isinstance(state, dict) and "epoch" in state else None

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint with ``state``, atomically (a crash mid-write keeps the previous one)."""
        import os
        import pickle
        import tempfile
        from pathlib import Path

        self.folder.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile("wb", dir=self.folder, prefix=".state.", delete=False)
        try:
            with handle:
                pickle.dump({**state, "fingerprint": self.fingerprint}, handle, protocol=pickle.HIGHEST_PROTOCOL)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, self.folder / CHECKPOINT_FILE)
            self.epoch = state["epoch"]
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def training_fingerprint(config: RunConfig, dataset: DatasetIndex) -> str:
    """A hash of what shapes the trained model: the configuration's keys (but the outputs', quantization's and
    precision's) and the training and validation images."""
    import hashlib
    import json

    from tlcore.quantization import UNRELATED_KEYS

    keys = {key: value for key, value in config.to_dict().items()
            if key not in UNRELATED_KEYS and key not in ("config_file", "output_dir")}
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode())
    digest.update(dataset.training.fingerprint().encode())
    digest.update(dataset.validation.fingerprint().encode())
    return digest.hexdigest()[:24]


class Trainable(Protocol):
    """What a framework gives :func:`fit`: its classifier, seen through the operations training needs.

    ``features(batch)`` runs the frozen base in inference mode (n x ``dim``); ``model_key()``
    identifies its weights for the feature cache; ``freeze(layers)`` makes the last ``layers``
    layers of the base trainable (0: all frozen; BatchNorm stays in inference mode);
    ``steps(cached, learning_rate, class_weights)`` gives the steps of a phase: on features
    (``cached``) only the head trains, else images go through the whole classifier; a framework that
    honours ``label_smoothing`` and ``weight_decay`` (:attr:`tlcore.frameworks.Framework.keys`) gets them as
    keyword arguments when they are set (the head's loss smooths its labels; L2 on the head's kernel is
    added to its gradient);
    ``head_scores(features)`` is the trained classifier's scores (softmax) for features, in
    inference mode, so that evaluation reuses the validation images' features.
    """

    dim: int
    name: str
    layers: int

    def features(self, images: Any) -> Any: ...

    def head_scores(self, features: Any) -> Any: ...

    def model_key(self) -> str: ...

    def freeze(self, layers: int) -> None: ...

    def steps(self, cached: bool, learning_rate: float, class_weights: Any, *, label_smoothing: float = 0.0,
              weight_decay: float = 0.0) -> Steps: ...


@dataclass(frozen=True)
class Phase:
    epochs: int
    layers: int
    learning_rate: float
    note: str = ""


def phases(config: RunConfig) -> list[Phase]:
    """One phase, or the head first on the frozen base and then fine-tuning (the Keras guide's recipe)."""
    if not two_phase(config):
        return [Phase(config.epochs, config.fine_tune_layers, config.learning_rate)]
    rate = config.fine_tune_learning_rate or config.learning_rate / 10
    return [Phase(config.epochs, 0, config.learning_rate, "head"),
            Phase(config.fine_tune_epochs, config.fine_tune_layers, rate,
                  f"fine-tuning the last {config.fine_tune_layers} layers")]


def _head_options(config: RunConfig) -> dict[str, float]:
    """The head's regularisation for :meth:`Trainable.steps`, given only when set: a framework that does not
    honour ``label_smoothing`` or ``weight_decay`` (its :attr:`Framework.keys`) never gets them."""
    return {key: value for key in ("label_smoothing", "weight_decay") if (value := getattr(config, key))}


def _search(data: CachedData | StreamedData, dataset: DatasetIndex, config: RunConfig, seed: int, weights: Any,
            reporter: Reporter, events: RunEvents) -> dict[str, Any]:
    """The head search on the cached training features (the chief's, sent to every worker): the settings
    chosen; its result is kept in ``events.head_search``."""
    from tlcore.head_search import SearchResult, search_head

    assert isinstance(data, CachedData)
    cluster = events.cluster
    found = search_head(data.sets["training"], dataset.num_outputs, config, seed, weights, reporter) \
        if cluster.chief else None
    record = cluster.broadcast(found.to_dict() if found is not None else None)
    events.head_search = found if found is not None else SearchResult.from_dict(record)
    return dict(events.head_search.chosen)


def _check_data(data: CachedData | StreamedData, dataset: DatasetIndex, config: RunConfig, seed: int, weights: Any,
                reporter: Reporter) -> Any:
    """The data check (:mod:`tlcore.health`) on the cached features, with out-of-fold heads trained as the head will
    be; without cached features (fine-tuning, augmentation every epoch), of identical files and classes only."""
    import numpy as np

    from tlcore.features import SPLITS, FeatureSet
    from tlcore.head_search import MAX_EPOCHS, Settings
    from tlcore.health import check_dataset

    random_base = config.weights is None and config.source_keras_model is None \
        and config.options.get("source_torch_model") is None
    if isinstance(data, CachedData):
        sets = data.sets
        if random_base:  # random projections: unrelated images come out alike
            reporter.info("Data check: the base has random weights, so near-duplicates are not looked for (identical "
                          "files are)")
    else:
        reporter.info("Data check: features are not computed once in this run, so it looks for identical files and "
                      "checks the classes only (tl check looks for near-duplicates and wrong labels too)")
        sets = {}
        for name in SPLITS:
            split = getattr(dataset, name)
            sets[name] = FeatureSet(np.zeros((len(split), 1), np.float32), np.asarray(split.label_ids, np.int64),
                                    np.zeros(0, np.int64))
    settings = Settings(config.learning_rate, config.weight_decay, config.label_smoothing)
    return check_dataset(sets, dataset, settings, epochs=min(config.epochs, MAX_EPOCHS), batch_size=config.batch_size,
                         dropout=config.dropout, seed=seed, class_weights=weights, reporter=reporter,
                         near_duplicates=not random_base)


def scored_by_workers(trainable: Trainable, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
                      reporter: Reporter, cluster: Cluster, report: bool) -> tuple[Any, Any]:
    """The trained classifier's scores of the validation images, ``(rows, scores)`` in row order, each worker
    scoring its share (:meth:`Cluster.share`) and the shares gathered: the evaluation of a streamed run with
    several workers. Rows of images that do not decode are left out; with ``report`` (the epochs did not go
    through the validation images), the chief names them."""
    import numpy as np

    from tlcore.loader import ImageBatches, report_undecodable, run_batches

    batches = ImageBatches(dataset.validation, preprocessing, config.batch_size,
                           order=cluster.share(range(len(dataset.validation))), bad_images=config.bad_images)
    rows, scores = [], []

    def score(batch: Any) -> None:
        rows.append(np.asarray(batch.indices))
        scores.append(trainable.head_scores(trainable.features(batch.images)))

    run_batches(batches, score, reporter, label=f"evaluating (this worker's share, of {cluster.size}) ", report=False)
    shares = cluster.gather((np.concatenate(rows) if rows else np.zeros(0, np.int64),
                             np.concatenate(scores) if scores else np.zeros((0, dataset.num_outputs), np.float32),
                             sorted(batches.undecodable)))
    if cluster.chief and report:
        report_undecodable(dataset.validation, sorted(entry for *_, skipped in shares for entry in skipped), reporter)
    every_row = np.concatenate([share_rows for share_rows, *_ in shares])
    order = np.argsort(every_row, kind="stable")
    every_score = np.concatenate([share_scores for _, share_scores, _ in shares])[order]
    return every_row[order], every_score if len(order) else None


def fit(trainable: Trainable, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
        reporter: Reporter, events: RunEvents) -> None:
    """Train ``trainable``'s head (and fine-tune its base) as the configuration says; with a checkpoint
    (``events.checkpoint``), save the state after every epoch, and continue from a resumed one."""
    checkpoint = events.checkpoint
    cluster = events.cluster
    resumed = cluster.broadcast(checkpoint.resumed if checkpoint is not None else None)  # the chief's
    seed = resumed["seed"] if resumed is not None else cluster.broadcast(run_seed(config))
    weights = class_weights(config, dataset)
    holdout = None
    if watched_images(config) == "hold-out":
        holdout = holdout_indices(dataset.training, config.holdout_fraction, seed)
        reporter.info(f"Early stopping watches a hold-out of {len(holdout)} training images: val_loss and val_acc "
                      "below are measured on it, not on the validation images")
    elif config.early_stopping_patience:
        reporter.warning("early stopping watches the validation images, so their Top-1 accuracy is optimistic; "
                         '"early_stopping_monitor": "holdout" keeps them for measuring only')
    if events.check_only:  # the features of the images themselves, for the search and the check alone
        config = replace(config, augmentation=(), augmentation_views=0, fine_tune_layers=0, fine_tune_epochs=0,
                         feature_cache="auto" if config.feature_cache == "off" else config.feature_cache)
    first = 1
    chosen = resumed.get("search") if resumed is not None else None
    if chosen:  # the interrupted run's head search chose these: the resumed run trains with them
        config = replace(config, **chosen)
        events.settle(config)
    for index in range(len(phases(config))):
        phase = phases(config)[index]
        if resumed is not None and index < resumed["phase"]:
            continue  # finished before the interruption: the resumed state holds what it trained
        if resumed is not None and index == resumed["phase"]:
            first = resumed["first"]
        trainable.freeze(phase.layers)
        data = training_data(dataset, preprocessing, config, reporter, seed, compute=trainable.features,
                             dim=trainable.dim, model_key=trainable.model_key, frozen=phase.layers == 0,
                             holdout=holdout, cluster=cluster)
        if index == 0 and chosen is None and search_enabled(config, data.cached and phase.layers == 0):
            chosen = _search(data, dataset, config, seed, weights, reporter, events)
            config = replace(config, **chosen)
            events.settle(config)
            phase = phases(config)[index]
        elif index == 0 and config.head_search is True and not data.cached:
            reporter.warning('"head_search" needs a frozen base whose features are computed once (no fine_tune_layers '
                             'without fine_tune_epochs, no augmentation with "augmentation_views": 0); the configured '
                             "values train the head")
        if index == 0 and config.data_check and cluster.chief and (resumed is None or events.check_only):
            events.health = _check_data(data, dataset, config, seed, weights, reporter)
        if events.check_only:
            return
        steps = trainable.steps(data.cached, phase.learning_rate, weights, **_head_options(config))
        parted = isinstance(data, StreamedData)  # images: each worker decodes its part of a batch
        train_step, test_step = (steps.train, steps.test) if cluster.size == 1 else \
            (spread(cluster, steps.train, parted), spread(cluster, steps.test, parted))
        announce_training(reporter, config, dataset.num_outputs, trainable.name, trainable.layers, data.cached,
                          tuned=phase.layers, epochs=phase.epochs, views=data.views - 1)
        last = first + phase.epochs - 1
        start, first_step = first, 0
        best = None
        if resumed is not None and index == resumed["phase"]:
            _load_state(steps, resumed["steps"])
            events.history[:] = resumed["history"]
            start, first_step, best = resumed["epoch"] + 1, resumed["step"], resumed["best"]
            resumed = None
        notes = [phase.note] if len(phases(config)) > 1 else []
        if holdout is not None:
            notes.append(f"val_* on the hold-out of {len(holdout)} training images")
        loop = TrainingLoop(reporter, events, total_epochs(config), data.num_train, data.num_validation,
                            first=start, last=last, note="; ".join(notes), patience=config.early_stopping_patience,
                            snapshot=steps.snapshot, restore=steps.restore,
                            watched=watched_images(config))
        loop.epoch, loop.best = start - 1, best
        per_epoch = math.ceil(data.num_train / config.batch_size)
        rate = LearningRate(phase.learning_rate, config.learning_rate_schedule, config.warmup_epochs, phase.epochs,
                            per_epoch)

        def save(epoch: int, step: int, index: int = index, first: int = first, loop: TrainingLoop = loop,
                 steps: Steps = steps) -> None:
            if checkpoint is None and cluster.size == 1:
                return
            state = _state(steps)  # on every worker: reading the weights may take all of them (the engine's sync)
            if checkpoint is not None:
                checkpoint.save({"seed": seed, "phase": index, "first": first, "epoch": epoch, "step": step,
                                 "epochs": total_epochs(config), "history": list(events.history), "best": loop.best,
                                 "steps": state, "search": chosen})

        keyed = "keys" in inspect.signature(steps.train).parameters  # steps that draw dropout per image

        def batches(epoch: int, data: StreamedData | CachedData = data, keyed: bool = keyed) -> Iterator[Any]:
            return data.training(epoch, keys=keyed)

        began = time.monotonic()
        run_epochs(loop, batches, data.validation, train_step, test_step, rate, steps.set_learning_rate,
                   first_step=first_step, after_epoch=save)
        if index == 0 and events.head_search is not None:  # what the search cost is measured against
            events.head_search.training_seconds = time.monotonic() - began
        first = loop.epoch + 1
    if isinstance(data, CachedData):  # the final classifier is the frozen base + this head: score what is cached
        validation = data.sets["validation"]
        scores = [trainable.head_scores(features) for features, _ in validation.batches(max(config.batch_size, 256))]
        import numpy as np

        events.validation_scores = (np.sort(validation.rows), np.concatenate(scores) if scores else None)
    elif cluster.size > 1:  # streamed: the evaluation is spread too, each worker scoring its share
        events.validation_scores = scored_by_workers(trainable, dataset, preprocessing, config, reporter, cluster,
                                                     report=holdout is not None)
    if events.early_stopping is not None:
        events.early_stopping.update(monitor=config.early_stopping_monitor,
                                     holdout_images=len(holdout) if holdout is not None else 0)
