"""Several workers (processes, on one machine or many) in one run, on the framework's own engine.

A framework pack sets its engine up in ``tl_cluster`` (torch: ``torch.distributed`` from
torchrun's environment; keras: ``tf.distribute.MultiWorkerMirroredStrategy`` from ``TF_CONFIG``)
and gives the core a :class:`Cluster`: which worker this is, and the engine's collectives
(gather, broadcast, sum). The core spreads the work with them, the same for every framework:

- feature extraction: each worker computes the features of its share of the images
  (:meth:`Cluster.share`); the shares are gathered, so every worker has them all;
- training: each global batch (``batch_size`` images) is split between the workers; the
  framework's steps add up the gradients over the workers (the engine's all-reduce),
  and the epoch's loss and accuracy are summed over the workers, so every worker takes the
  same steps and the same early-stopping decisions as one worker would;
- writing: only the chief (worker 0) locks and writes ``output_dir``, ``results.json``,
  the reports and the checkpoints; the others write nothing there.

With ``seed`` set, shuffling and augmentation depend on the seed, the epoch and the image,
never on the worker, so the number of workers changes results only by floating-point
differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from tlcore.calls import describe_exception
from tlcore.errors import TLError


class WorkerError(TLError):
    """Another worker stopped, or could not be reached in time: the run stops on every worker."""

    exit_code = 1


class Collectives(Protocol):
    """The engine's operations over all workers (every worker calls each, in the same order)."""

    def all_gather(self, value: Any) -> list[Any]: ...

    def broadcast(self, value: Any) -> Any: ...

    def sum(self, values: list[float]) -> list[float]: ...

    def close(self) -> None: ...


@dataclass
class Cluster:
    """The workers of a run: this one's ``rank`` of ``size``, and the engine's ``collectives``.

    :param engine: how the workers talk, for messages (``"torch.distributed (gloo)"``).
    :param where: where the workers meet, for messages (``"127.0.0.1:29500"``).
    """

    rank: int = 0
    size: int = 1
    engine: str = ""
    where: str = ""
    collectives: Collectives | None = None

    @property
    def chief(self) -> bool:
        """Worker 0: the one that writes the outputs."""
        return self.rank == 0

    @property
    def name(self) -> str:
        return f"worker {self.rank} of {self.size}"

    def share(self, items: Sequence[Any]) -> list[Any]:
        """This worker's part of ``items``: every ``size``-th, from ``rank``."""
        return list(items[self.rank::self.size])

    def part(self, count: int) -> slice:
        """This worker's contiguous part of a batch of ``count`` items (sizes differ by one at most)."""
        start = count * self.rank // self.size
        return slice(start, count * (self.rank + 1) // self.size)

    def gather(self, value: Any) -> list[Any]:
        """Every worker's ``value``, in worker order."""
        if self.collectives is None:
            return [value]
        return self._collective("gather", self.collectives.all_gather, value)

    def broadcast(self, value: Any) -> Any:
        """The chief's ``value``, on every worker."""
        if self.collectives is None:
            return value
        return self._collective("broadcast", self.collectives.broadcast, value)

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` added up over the workers, element by element."""
        if self.collectives is None:
            return [float(value) for value in values]
        return self._collective("sum", self.collectives.sum, [float(value) for value in values])

    def close(self) -> None:
        if self.collectives is not None:
            self.collectives.close()
            self.collectives = None

    def _collective(self, what: str, operation: Any, value: Any) -> Any:
        try:
            return operation(value)
        except (KeyboardInterrupt, TLError):
            raise
        except Exception as exc:  # noqa: BLE001 - the engine's own errors: a worker is gone or too slow
            raise self.lost(what, exc) from None

    def lost(self, what: str, error: BaseException) -> WorkerError:
        """The error to raise when the engine's ``what`` (a collective) failed with ``error``: another
        worker stopped, or did not answer within ``worker_timeout``."""
        others = f"worker {1 - self.rank}" if self.size == 2 else f"one of the other {self.size - 1} workers"
        return WorkerError(f"{self.name}: {others} stopped or did not answer in time ({what} over {self.engine} "
                           f"at {self.where}: {describe_exception(error)}); the run stops on every worker: see the "
                           "other workers' messages")


SINGLE = Cluster()
"""One worker: the run alone."""
