"""Head search: the head's training settings chosen by cross-validation on the cached features.

Once the features of a frozen base are computed (:mod:`tlcore.features`), training a head on them is cheap,
so tl need not guess its learning rate, weight decay, label smoothing and epochs: it trains a set of heads
on stratified folds of the training images, reads each one's out-of-fold accuracy after every epoch, keeps
the best settings and lets the framework train the real head on all training images with them. The search
never looks at the validation images and never runs an image through the base again.

All candidate heads of a fold train together, as one batched computation in numpy: the same minibatches,
Adam, dropout, class weights, L2 and label smoothing as the framework packs' own steps
(:class:`tlcore.training.Trainable`), so settings chosen here mean the same there. Keys the configuration
sets stay as they are; the search varies only the others.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import product
from typing import TYPE_CHECKING, Any, Sequence

from tlcore.sampling import epoch_order, view_choice

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import RunConfig
    from tlcore.features import FeatureSet
    from tlcore.report import Reporter

SEARCHED_KEYS = ("learning_rate", "weight_decay", "label_smoothing", "epochs")
"""The keys the search chooses, unless the configuration sets them."""
GRID: dict[str, tuple[float, ...]] = {
    "learning_rate": (0.001, 0.003, 0.01),
    "weight_decay": (0.0, 0.001, 0.01),
    "label_smoothing": (0.0, 0.1),
}
"""The values tried for each searched key (every combination; the configuration's own value is always tried too).
Measured against a wider grid of higher rates and more epochs on real photographs (docs/accuracy.md): equal within
noise, and cheaper."""
MAX_EPOCHS = 40
"""The most epochs a searched head trains; the search reads every epoch's out-of-fold accuracy on the way."""
MAX_FOLDS = 5
SEARCH_IMAGES = 4000
"""Larger training sets are searched on a stratified sample of this many images (the chosen settings then train
the head on all of them)."""


@dataclass(frozen=True)
class Settings:
    """One candidate head's training settings."""

    learning_rate: float
    weight_decay: float
    label_smoothing: float

    def as_dict(self) -> dict[str, float]:
        return {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                "label_smoothing": self.label_smoothing}


@dataclass
class SearchResult:
    """What the search tried and chose.

    :param chosen: the chosen value of every searched key (the configuration's own for the fixed ones).
    :param fixed: the searched keys the configuration set, which the search left as they are.
    :param tried: one row per candidate: its settings, best epoch, out-of-fold accuracy and loss there.
    :param folds: the number of cross-validation folds.
    :param images: the training images the search used.
    :param seconds: how long it took.
    """

    chosen: dict[str, Any]
    fixed: tuple[str, ...]
    tried: list[dict[str, Any]]
    folds: int
    images: int
    seconds: float
    default_accuracy: float | None = None
    """The out-of-fold accuracy of the configuration's own values (at its epochs), when it was among the tried."""
    training_seconds: float | None = None
    """How long the framework then took to train the head with the chosen settings (its epochs), for comparison."""
    rows: Any = field(default=None, repr=False)
    """The positions in the training set of the images searched (all, or a stratified sample)."""

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SearchResult:
        """The result :meth:`to_dict` describes (without the out-of-fold scores)."""
        return cls(chosen=dict(record["chosen"]), fixed=tuple(record["fixed"]), tried=list(record["tried"]),
                   folds=record["folds"], images=record["images"], seconds=record["seconds"],
                   default_accuracy=record.get("default_accuracy"), training_seconds=record.get("head_training_seconds"))

    def to_dict(self) -> dict[str, Any]:
        best = max(self.tried, key=_rank)
        return {"chosen": self.chosen, "fixed": list(self.fixed), "folds": self.folds, "images": self.images,
                "seconds": round(self.seconds, 3),
                "head_training_seconds": None if self.training_seconds is None else round(self.training_seconds, 3),
                "cv_accuracy": best["cv_accuracy"],
                "cv_loss": best["cv_loss"], "default_accuracy": self.default_accuracy, "tried": self.tried}


def _rank(row: dict[str, Any]) -> tuple[float, float]:
    return row["cv_accuracy"], -row["cv_loss"]


def searched_keys(config: RunConfig) -> tuple[str, ...]:
    """The searched keys the configuration leaves to the search (those it does not set)."""
    return tuple(key for key in SEARCHED_KEYS if key not in config.given_keys)


def search_enabled(config: RunConfig, cached: bool) -> bool:
    """Whether a run searches its head: ``head_search`` true, or ``"auto"`` with a frozen base, features
    computed once (``cached``), and a key left to search."""
    if config.head_search is False or not cached:
        return False
    return bool(searched_keys(config))


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0 .. folds-1) of each item: each class's items dealt round the folds in a seeded order, so
    every fold gets its share of every class (a class smaller than ``folds`` is in that many folds)."""
    import numpy as np

    rng = np.random.default_rng([seed, 0xF01D])
    fold_of = np.empty(len(labels), dtype=np.int64)
    start = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        fold_of[members] = (start + np.arange(len(members))) % folds
        start += len(members)  # the next class starts where this one stopped: folds stay even in size
    return fold_of


def fold_count(labels: np.ndarray) -> int:
    """Folds for cross-validating on ``labels``: :data:`MAX_FOLDS`, fewer when a class has fewer images (so that
    every fold holds every class where it can), at least 2."""
    import numpy as np

    counts = np.bincount(labels)
    return max(2, min(MAX_FOLDS, int(counts[counts > 0].min())))


def stratified_sample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """About ``count`` positions of ``labels``, every class in proportion (at least one of each), sorted."""
    import numpy as np

    rng = np.random.default_rng([seed, 0x5A3B])
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = max(1, round(count * len(members) / len(labels)))
        chosen.append(rng.choice(members, size=min(take, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def candidates(config: RunConfig) -> list[Settings]:
    """Every combination of the grid's values for the keys left to search, the configuration's own value
    for the others; the configuration's defaults are always among them."""
    keys = searched_keys(config)
    values = {key: (GRID[key] if key in keys else ()) + (getattr(config, key),) for key in GRID}
    seen = dict.fromkeys(Settings(*combination) for combination in product(*(values[key] for key in GRID)))
    return list(seen)


class HeadBatch:
    """Heads of several settings trained together on the same minibatches: Adam, L2 on the kernel (added to its
    gradient, as the packs do), label smoothing, one dropout mask per image shared by the heads, class weights.

    Mirrors the framework packs' head steps. The kernels of all heads sit side by side in one ``dim x (heads *
    classes)`` matrix, so that a step is two matrix products whatever the number of heads.
    """

    BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-7

    def __init__(self, settings: Sequence[Settings], dim: int, classes: int, seed: int,
                 class_weights: np.ndarray | None, dropout: float) -> None:
        import numpy as np

        self.heads, self.classes = len(settings), classes
        rng = np.random.default_rng([seed, 0x4EAD])
        limit = math.sqrt(6.0 / (dim + classes))  # Glorot-uniform, as Keras' Dense starts
        self.kernel = np.tile(rng.uniform(-limit, limit, (dim, 1, classes)).astype(np.float32), (1, self.heads, 1))
        self.kernel = self.kernel.reshape(dim, self.heads * classes)
        self.bias = np.zeros(self.heads * classes, dtype=np.float32)

        def per_head(values: Sequence[float]) -> np.ndarray:
            return np.repeat(np.asarray(values, dtype=np.float32), classes)

        self.rate = per_head([s.learning_rate for s in settings])
        self.decay = per_head([s.weight_decay for s in settings])
        self.smoothing = np.asarray([s.label_smoothing for s in settings], dtype=np.float32)[None, :, None]
        self.class_weights = class_weights
        self.dropout = dropout
        self.rng = np.random.default_rng([seed, 0xD809])
        self.moments = [np.zeros_like(self.kernel), np.zeros_like(self.kernel), np.zeros_like(self.bias),
                        np.zeros_like(self.bias)]
        self.steps = 0

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Softmax scores ``(n, heads, classes)``."""
        import numpy as np

        logits = (features @ self.kernel + self.bias).reshape(len(features), self.heads, self.classes)
        logits -= logits.max(axis=2, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=2, keepdims=True)
        return logits

    def train(self, features: np.ndarray, labels: np.ndarray) -> None:
        """One step of every head on a batch."""
        import numpy as np

        count = len(labels)
        if self.dropout:
            kept = self.rng.random(features.shape, dtype=np.float32) >= self.dropout
            features = features * kept / np.float32(1.0 - self.dropout)
        gradient = self.scores(features)
        smoothing = self.smoothing / self.classes
        gradient -= smoothing
        gradient[np.arange(count), :, labels] -= 1.0 - self.smoothing[0, :, 0]
        weight = np.float32(1.0 / count)
        if self.class_weights is not None:
            gradient *= (self.class_weights[labels] * weight)[:, None, None]
        else:
            gradient *= weight
        gradient = gradient.reshape(count, -1)
        kernel_gradient = features.T @ gradient
        kernel_gradient += self.decay * self.kernel
        bias_gradient = gradient.sum(axis=0)
        self.steps += 1
        correction1 = 1.0 - self.BETA1 ** self.steps
        correction2 = 1.0 - self.BETA2 ** self.steps
        for value, gradient_of, first, second in ((self.kernel, kernel_gradient, *self.moments[:2]),
                                                  (self.bias, bias_gradient, *self.moments[2:])):
            first *= self.BETA1
            first += (1.0 - self.BETA1) * gradient_of
            second *= self.BETA2
            second += (1.0 - self.BETA2) * np.square(gradient_of)
            step = (first / correction1) / (np.sqrt(second / correction2) + self.EPSILON)
            value -= self.rate * step


def cross_validate(features: np.ndarray, labels: np.ndarray, classes: int, settings: Sequence[Settings],
                   fold_of: np.ndarray, *, epochs: int, batch_size: int, seed: int, dropout: float,
                   class_weights: np.ndarray | None = None, keep_scores: tuple[int, int] | None = None,
                   progress: Any = None) -> dict[str, Any]:
    """Train every candidate on each fold's other folds and score the fold's images after every epoch.

    ``features`` is ``(n, dim)`` or ``(n, views, dim)`` (view 0 the image itself: the out-of-fold images are
    scored on it, training draws one view per image and epoch). Returns ``correct`` and ``loss``, each
    ``(candidates, epochs)`` summed over the out-of-fold images (weighted by ``class_weights`` when given),
    and with ``keep_scores=(candidate, epoch)`` that head's out-of-fold ``scores`` ``(n, classes)``.
    """
    import numpy as np

    if features.ndim == 2:
        features = features[:, None, :]
    count, views, dim = features.shape
    correct = np.zeros((len(settings), epochs))
    loss = np.zeros((len(settings), epochs))
    kept = np.zeros((count, classes), dtype=np.float32) if keep_scores is not None else None
    folds = int(fold_of.max()) + 1
    for fold in range(folds):
        train_rows = np.flatnonzero(fold_of != fold)
        test_rows = np.flatnonzero(fold_of == fold)
        test_features = np.ascontiguousarray(features[test_rows, 0], dtype=np.float32)
        test_labels = labels[test_rows]
        weight = class_weights[test_labels] if class_weights is not None else np.ones(len(test_rows))
        heads = HeadBatch(settings, dim, classes, seed + fold, class_weights, dropout)
        for epoch in range(epochs):
            order = train_rows[epoch_order(len(train_rows), seed + fold, epoch + 1)]
            view_of = view_choice(count, views, seed + fold, epoch + 1)
            for start in range(0, len(order), batch_size):
                rows = np.sort(order[start:start + batch_size])
                batch = features[rows, 0 if view_of is None else view_of[rows]]
                heads.train(np.asarray(batch, dtype=np.float32), labels[rows])
            scores = heads.scores(test_features)  # (images, heads, classes)
            right = scores.argmax(axis=2) == test_labels[:, None]
            correct[:, epoch] += (right * weight[:, None]).sum(axis=0)
            picked = scores[np.arange(len(test_rows)), :, test_labels]
            loss[:, epoch] += (-np.log(np.maximum(picked, 1e-7)) * weight[:, None]).sum(axis=0)
            if kept is not None and keep_scores is not None and epoch == keep_scores[1]:
                kept[test_rows] = scores[:, keep_scores[0]]
            if progress is not None:
                progress()
    return {"correct": correct, "loss": loss, "scores": kept}


def search_head(training: FeatureSet, classes: int, config: RunConfig, seed: int,
                class_weights: np.ndarray | None, reporter: Reporter) -> SearchResult:
    """Choose the head's settings by stratified k-fold cross-validation on the training ``FeatureSet``
    (cached features, views included); see the module's docstring."""
    import numpy as np

    started = time.monotonic()
    rows = np.asarray(training.rows)
    labels = np.asarray(training.labels)[rows]
    if len(rows) > SEARCH_IMAGES:
        keep = stratified_sample(labels, SEARCH_IMAGES, seed)
        rows, labels = rows[keep], labels[keep]
    features = training.features[rows]  # (n, dim) or (n, views, dim): read once, in memory
    folds = fold_count(labels)
    fold_of = stratified_folds(labels, folds, seed)
    settings = candidates(config)
    fixed = tuple(key for key in SEARCHED_KEYS if key in config.given_keys)
    # with the epochs set, heads are compared at those epochs (at MAX_EPOCHS when more: the search's cost is bounded)
    epochs = min(config.epochs, MAX_EPOCHS) if "epochs" in fixed else MAX_EPOCHS
    weight = class_weights[labels].sum() if class_weights is not None else float(len(labels))
    bar = reporter.progress(folds * epochs, label=f"head search ({len(settings)} heads, {folds} folds) ",
                            unit="epoch", delay=2.0)
    done = [0]

    def advance() -> None:
        done[0] += 1
        bar.update(done[0])

    measured = cross_validate(features, labels, classes, settings, fold_of, epochs=epochs,
                              batch_size=config.batch_size, seed=seed, dropout=config.dropout,
                              class_weights=class_weights, progress=advance)
    bar.finish()
    accuracy = measured["correct"] / weight
    loss = measured["loss"] / weight
    if "epochs" in fixed:  # only the configured epoch counts
        accuracy[:, :epochs - 1] = -1.0
    tried = []
    for index, candidate in enumerate(settings):
        epoch = int(np.lexsort((loss[index], -accuracy[index]))[0])  # best accuracy, then lowest loss
        tried.append({**candidate.as_dict(), "epochs": epoch + 1, "cv_accuracy": round(float(accuracy[index, epoch]), 5),
                      "cv_loss": round(float(loss[index, epoch]), 5)})
    best_index = max(range(len(tried)), key=lambda i: _rank(tried[i]))
    best = tried[best_index]
    chosen = {key: getattr(config, key) if key in fixed else best[key] for key in SEARCHED_KEYS}
    own = Settings(config.learning_rate, config.weight_decay, config.label_smoothing)
    default_accuracy = None
    if own in settings:
        default_accuracy = round(float(accuracy[settings.index(own), min(config.epochs, epochs) - 1]), 5)
    result = SearchResult(chosen=chosen, fixed=fixed, tried=tried, folds=folds, images=len(rows),
                          seconds=time.monotonic() - started, default_accuracy=default_accuracy, rows=rows)
    reporter.info(describe(result))
    return result


def describe(result: SearchResult) -> str:
    """The line a run prints after the search."""
    chosen = ", ".join(f"{key} {_text(result.chosen[key])}" for key in SEARCHED_KEYS if key not in result.fixed)
    best = max(result.tried, key=_rank)
    return (f"Head search: {len(result.tried)} heads on {result.folds} folds of {result.images} training images "
            f"in {result.seconds:.1f} s; chose {chosen} (cross-validated accuracy {best['cv_accuracy']:.4f})")


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
