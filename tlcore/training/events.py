"""What observer plugins hear of the epochs, and what a run keeps of its training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from tlcore.distributed import SINGLE
from tlcore.training.schedule import total_epochs

if TYPE_CHECKING:
    from tlcore.calls import Hooks
    from tlcore.config import RunConfig
    from tlcore.training.checkpoint import Checkpoint


class RunEvents:
    """Handed to the trainer so that observer plugins hear about epochs; keeps the epoch history,
    and what early stopping did (:attr:`early_stopping`)."""

    def __init__(self, hooks: Hooks, config: RunConfig) -> None:
        self._hooks = hooks
        self._config = config
        self.history: list[dict[str, float]] = []
        self.early_stopping: dict[str, Any] | None = None
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
