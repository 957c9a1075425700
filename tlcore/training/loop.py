"""The epoch loop as the user sees it: the epoch lines, live progress, early stopping with the best weights kept."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterator

from tlcore.errors import ModelError

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.report import Progress, Reporter
    from tlcore.training.contract import StepResult
    from tlcore.training.events import RunEvents
    from tlcore.training.schedule import LearningRate


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
                 watched: str = "validation") -> None:
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
        diverged = [f"{name} {value}" for name, value in logs.items() if not math.isfinite(value)]
        if diverged:
            raise ModelError(f"training diverged in epoch {self.epoch} ({', '.join(diverged)}): the model is no use, "
                             'so nothing is saved; lower "learning_rate", or check "class_weight" and '
                             '"preprocessing" (an extreme weight or std overflows the loss)')
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
               train_step: Callable[..., StepResult],
               test_step: Callable[..., StepResult],
               learning_rate: LearningRate | None = None,
               set_learning_rate: Callable[[float], None] | None = None, *, first_step: int = 0,
               after_epoch: Callable[[int, int], None] | None = None) -> None:
    """The usual loop over ``loop``'s epochs: ``train_batches(epoch)`` through ``train_step``,
    then ``validation_batches()`` through ``test_step``; each step returns a :class:`StepResult`.
    With a varying ``learning_rate``, ``set_learning_rate`` is called before every training step
    (counted from ``first_step``). ``after_epoch(epoch, steps done)`` follows every epoch."""
    step = first_step
    for epoch in loop:
        for batch in train_batches(epoch):  # (images, labels, per-image keys)
            if learning_rate is not None and learning_rate.varies and set_learning_rate is not None:
                set_learning_rate(learning_rate(step))
            result = train_step(*batch)
            step += 1
            loop.trained(len(batch[1]) if result.images is None else result.images, result.loss, result.correct)
        for images, labels in validation_batches():
            result = test_step(images, labels)
            loop.validated(len(labels) if result.images is None else result.images, result.loss, result.correct)
        loop.end_epoch()
        if after_epoch is not None:
            after_epoch(epoch, step)


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
