"""The phases of training (the head, then fine-tuning) and the learning rate of every step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tlcore.config import RunConfig


def two_phase(config: RunConfig) -> bool:
    """Whether the head trains first on the frozen base, then the last layers are fine-tuned."""
    return config.fine_tune_layers > 0 and config.fine_tune_epochs > 0


def total_epochs(config: RunConfig) -> int:
    return config.epochs + (config.fine_tune_epochs if two_phase(config) else 0)


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


class LearningRate:
    """The learning rate at each step: a linear warm-up, then constant or a cosine decay to 0."""

    def __init__(self, rate: float, schedule: str, warmup_epochs: int, epochs: int, steps_per_epoch: int) -> None:
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
