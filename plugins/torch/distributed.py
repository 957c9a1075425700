"""Several workers for the torch framework: ``torch.distributed``, set up from torchrun's environment.

Start one process per worker with ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` as torchrun does); every worker runs the same ``tl run``.
The process group uses NCCL on GPUs and Gloo on CPUs; the core's collectives (gathering the
features, summing the epoch's metrics) and the trainer's gradient all-reduce go through it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Sequence

from tlcore.calls import describe_exception
from tlcore.distributed import Cluster, WorkerError
from tlcore.errors import ConfigError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED

if TYPE_CHECKING:
    from tlcore.config import ConfigKey, RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = "torch"

ENVIRONMENT = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""What torchrun sets for every worker, and what this needs."""


def _integer(name: str, low: int, high: int) -> Any:
    text = os.environ[name]
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name} is {text!r}; it must be a whole number from {low} to {high} (torchrun sets it); "
                          "start the workers with torchrun, or unset it for one worker")
    return value


def local_gpus() -> Any:
    """The GPUs this process computes on: under torchrun with several workers, its own (``LOCAL_RANK``: one
    process per GPU); alone, every GPU of the machine (``torch.nn.DataParallel`` splits each batch between
    them); none without CUDA."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        return []
    if int(os.environ.get("WORLD_SIZE") or 1) > 1:
        local = int(os.environ.get("LOCAL_RANK") or 0)
        if local >= count:
            raise ConfigError(f"LOCAL_RANK is {local}, but this machine has {count} GPU{'s' if count > 1 else ''}; "
                              f"start at most one worker per GPU (torchrun --nproc-per-node={count})")
        return [local]
    return list(range(count))


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [SHARED["distribute"], SHARED["worker_timeout"]]


@hookimpl(trylast=True)
def tl_cluster(config: RunConfig, reporter: Reporter) -> Cluster | None:
    given = [name for name in ENVIRONMENT if os.environ.get(name)]
    if given and config.options["distribute"] == "mirrored":
        raise ConfigError(f'"distribute" is "mirrored" (one process on this machine\'s devices), but torchrun\'s '
                          f'environment is set ({", ".join(given)}); set "distribute": "auto" or "multi_worker" to '
                          "join the workers, or unset it")
    if not given:
        if config.options["distribute"] == "multi_worker":
            raise ConfigError('"distribute" is "multi_worker", but torchrun\'s environment (RANK, WORLD_SIZE, '
                              "MASTER_ADDR, MASTER_PORT) is not set; start every worker with torchrun "
                              '(torchrun --nnodes=N --nproc-per-node=1 ... -m tlcli run), or set "distribute": "auto"')
        return None
    missing = [name for name in ENVIRONMENT if name not in given]
    if missing:
        raise ConfigError(f"torchrun's environment is incomplete: {', '.join(given)} set, {', '.join(missing)} not; "
                          "start the workers with torchrun, or unset them for one worker")
    size = _integer("WORLD_SIZE", 1, 1_000_000)
    rank = _integer("RANK", 0, size - 1)
    port = _integer("MASTER_PORT", 1, 65535)
    address = os.environ["MASTER_ADDR"]
    if size == 1:
        return None
    return join(rank, size, address, port, config.options["worker_timeout"], reporter)


def _store(rank: int, size: int, address: str, port: int, timeout: float) -> Any:
    """Where the workers meet: under torchrun the store its agent serves at MASTER_ADDR:MASTER_PORT, else one
    that worker 0 serves there. Each attempt (torchrun restarts the workers after a failure, ``--max-restarts``)
    meets under a prefix of its own: the store outlives the workers, and the addresses the previous attempt's
    workers published there are stale. The attempt is counted in the store, as every worker joins, not taken
    from TORCHELASTIC_RESTART_COUNT: on several machines the agents' counts can differ."""
    import torch.distributed as dist

    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(address, port, size, is_master=not agent and rank == 0, timeout=timedelta(seconds=timeout))
    attempt = (store.add("tl/joined", 1) - 1) // size
    return dist.PrefixStore(f"tl/attempt-{attempt}", store)


def join(rank: int, size: int, address: str, port: int, timeout: float, reporter: Reporter) -> Any:
    """Join the process group: every worker waits here (at most ``timeout`` seconds) for all the others."""
    import torch
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":  # NCCL needs each worker on its own GPU
        torch.cuda.set_device(local_gpus()[0])
    where = f"{address}:{port}"
    with reporter.activity(f"Worker {rank} of {size}: waiting for the other workers at {where}"):
        try:
            dist.init_process_group(backend, store=_store(rank, size, address, port, timeout), rank=rank,
                                    world_size=size, timeout=timedelta(seconds=timeout))
            dist.barrier()
        except Exception as exc:  # noqa: BLE001 - the engine's own errors: nobody there, or too slow
            if dist.is_initialized():
                dist.destroy_process_group()
            raise WorkerError(f"worker {rank} of {size}: the other workers did not all join at {where} within "
                              f"{timeout} s ({describe_exception(exc)}); start every worker with the same "
                              'MASTER_ADDR, MASTER_PORT and WORLD_SIZE, or raise "worker_timeout"') from None
    return Cluster(rank, size, f"torch.distributed ({backend})", where, TorchCollectives(backend))


class TorchCollectives:
    """The core's collectives over the default process group."""

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def all_gather(self, value: Any) -> Any:
        import torch.distributed as dist

        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, value)
        return gathered

    def sum(self, values: Sequence[Any]) -> Any:
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def broadcast(self, value: Any) -> Any:
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def broadcast_tensors(tensors: Any, cluster: Cluster) -> None:
    """The chief's values of ``tensors``, on every worker (in place)."""
    import torch.distributed as dist

    try:
        for tensor in tensors:
            dist.broadcast(tensor, src=0)
    except Exception as exc:  # noqa: BLE001 - the engine's own errors: a worker is gone or too slow
        raise cluster.lost("broadcast", exc) from None


def all_reduce_sum(tensors: Any, cluster: Cluster) -> None:
    """Add ``tensors`` up over the workers, in place, in one collective (the gradients of a step)."""
    import torch
    import torch.distributed as dist

    if not tensors:
        return
    flat = torch.cat([tensor.reshape(-1) for tensor in tensors])
    try:
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    except Exception as exc:  # noqa: BLE001 - the engine's own errors: a worker is gone or too slow
        raise cluster.lost("all-reduce", exc) from None
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset:offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()
