"""What a framework gives the core's training: a :class:`Trainable` classifier and the :class:`Steps` of a phase."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from tlcore.distributed import Cluster


@dataclass(frozen=True)
class StepResult:
    """What a training or test step returns for a batch."""

    loss: float
    """The batch's mean loss (with several workers: this worker's share of it, see :class:`Steps`)."""
    correct: float
    """How many of the batch's images the model got right."""
    images: int | None = None
    """The batch's size, when it is not ``len(labels)``: a step :func:`spread` over workers that each had only
    their part of it."""


class Steps(Protocol):
    """A framework's training and test steps for one phase (see :class:`Trainable`).

    ``snapshot()``/``restore(state)`` keep and give back the trained weights (early stopping). Steps may
    also have ``state()``/``load_state(state)``: weights and optimizer state, picklable, which a checkpoint
    keeps so that a resumed run continues exactly (without them it resumes the weights only).

    ``train`` gets each image's random key (:func:`tlcore.sampling.sample_keys`, uint64): a step that draws
    dropout per image draws it from its key (:func:`tlcore.sampling.sample_uniform`), so that a run gives the
    same result on one worker or several; steps without per-image randomness ignore them.

    With several workers (``events.cluster``), ``train`` and ``test`` get this worker's part of each
    batch and return its share of the batch's mean loss and its number correct: the framework divides
    its part's loss by the whole batch's size (or weight) and adds the gradients up over the workers with
    its engine's all-reduce before the update, so that every worker takes the same step.
    """

    def train(self, images: Any, labels: Any, keys: Any) -> StepResult: ...

    def test(self, images: Any, labels: Any) -> StepResult: ...

    def set_learning_rate(self, rate: float) -> None: ...

    def snapshot(self) -> Any: ...

    def restore(self, state: Any) -> None: ...


def spread(cluster: Cluster, step: Callable[..., StepResult], parted: bool = False) -> Callable[..., StepResult]:
    """A step over a whole batch, done by all the workers: each gives ``step`` its part of the batch, and
    gets back its share of the batch's mean loss (the framework's steps add the gradients up over the
    workers); the shares and the right answers are added up, so every worker sees the batch's figures.
    ``parted``: each worker is given only its part (:class:`StreamedData`), and the result also has the
    batch's size (:attr:`StepResult.images`), added up over the workers."""

    def spread_step(inputs: Any, labels: Any, *keys: Any) -> StepResult:
        if parted:
            result = step(inputs, labels, *keys)
            loss, right, count = cluster.sum([result.loss, result.correct, len(labels)])
            return StepResult(loss, right, int(count))
        part = cluster.part(len(labels))
        result = step(inputs[part], labels[part], *(key[part] for key in keys))
        loss, right = cluster.sum([result.loss, result.correct])
        return StepResult(loss, right)

    return spread_step


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
