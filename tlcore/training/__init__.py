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

The package, one concern per module: :mod:`~tlcore.training.schedule` (phases, learning rate),
:mod:`~tlcore.training.events` (what observers hear), :mod:`~tlcore.training.loop` (epochs, early stopping),
:mod:`~tlcore.training.data` (cached features or streamed images, the hold-out, class weights),
:mod:`~tlcore.training.checkpoint` (resuming), :mod:`~tlcore.training.contract` (what a framework gives) and
:mod:`~tlcore.training.fit` (the policy). The names below are its public interface.
"""

from tlcore.training.checkpoint import CHECKPOINT_FILE, CHECKPOINT_FOLDER, Checkpoint, training_fingerprint
from tlcore.training.contract import StepResult, Steps, Trainable, spread
from tlcore.training.data import CachedData, StreamedData, class_weights, holdout_indices, training_data, watched_images
from tlcore.training.events import RunEvents
from tlcore.training.fit import fit
from tlcore.training.loop import TrainingLoop, announce_training, run_epochs
from tlcore.training.schedule import LearningRate, Phase, phases, total_epochs, two_phase

__all__ = [
    "CHECKPOINT_FILE", "CHECKPOINT_FOLDER", "CachedData", "Checkpoint", "LearningRate", "Phase", "RunEvents",
    "StepResult", "Steps", "StreamedData", "Trainable", "TrainingLoop", "announce_training", "class_weights", "fit",
    "holdout_indices", "phases", "run_epochs", "spread", "total_epochs", "training_data", "training_fingerprint",
    "two_phase", "watched_images",
]
