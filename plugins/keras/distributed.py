"""Several devices or workers for the keras framework, on ``tf.distribute``'s strategies.

One process on several local devices (``"distribute": "mirrored"``, or ``"auto"`` with several GPUs):
``tf.distribute.MirroredStrategy``. The core sees one worker; the trainer's steps and the feature
extraction split each batch between the devices (:func:`local_part`), and the strategy adds the
gradients up.

Several workers: ``tf.distribute.MultiWorkerMirroredStrategy``, set up from ``TF_CONFIG``.

Every worker runs the same ``tl run`` with its own ``TF_CONFIG``: the same ``cluster.worker``
list of ``host:port`` addresses, and its own ``task.index`` (worker 0 is the chief). The
strategy's collectives carry the core's (gathering the features, summing the epoch's metrics)
and the gradient all-reduce of the trainer's steps; the model's variables are created in its
scope (:func:`scope`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import time
from typing import TYPE_CHECKING, Any, Sequence

from tlcore.calls import describe_exception
from tlcore.distributed import Cluster, WorkerError
from tlcore.errors import ConfigError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED

if TYPE_CHECKING:
    from tlcore.config import ConfigKey, RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = "keras"

_strategy = None
"""The strategy of this process's run, if any (a MultiWorkerMirroredStrategy is made before other TF ops)."""

EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


def scope() -> Any:
    """Where the run's variables are created: the strategy's scope with several workers, else nowhere special."""
    return _strategy.scope() if _strategy is not None else contextlib.nullcontext()


def strategy() -> Any:
    return _strategy


def local_replicas(cluster_size: int) -> Any:
    """How many of the strategy's replicas run in this process: its local devices (1 without a strategy)."""
    return _strategy.num_replicas_in_sync // cluster_size if _strategy is not None else 1


def local_part(tensors: Any, replicas: int) -> Any:
    """In a replica: its contiguous part of this process's batch ``tensors``, and a 0/1 float mask of the part's
    real rows. No part is empty (a model cannot run on an empty batch): a batch of fewer rows than ``replicas``
    (or a worker's empty share of one) is padded with zero rows, which the mask leaves out."""
    import tensorflow as tf

    count = tf.shape(tensors[0])[0]
    size = tf.maximum(count, replicas)
    real = tf.cast(tf.range(size) < count, tf.float32)
    padded = [tf.pad(tensor, [[0, size - count]] + [[0, 0]] * (len(tensor.shape) - 1)) for tensor in (*tensors, real)]
    if replicas == 1:
        return tuple(padded)
    index = tf.distribute.get_replica_context().replica_id_in_sync_group % replicas
    start, stop = size * index // replicas, size * (index + 1) // replicas
    return tuple(tensor[start:stop] for tensor in padded)


def spread_locally(config: RunConfig) -> Any:
    """For a run alone (no TF_CONFIG): a MirroredStrategy over its devices when it has several GPUs or
    ``"distribute"`` is ``"mirrored"``. Called by the devices step, after the output lock: not before it, since
    listing devices starts TensorFlow."""
    global _strategy

    if _strategy is None:
        _strategy = mirrored(every_device=config.options["distribute"] == "mirrored")
    return _strategy


def mirrored(every_device: bool) -> Any:
    """A MirroredStrategy over this machine's GPUs, or with ``every_device`` over its CPUs when it has none;
    None when that is a single device and ``every_device`` is false (one device needs no strategy)."""
    import tensorflow as tf

    devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    if not devices and every_device:
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2 and not every_device:
        return None
    return tf.distribute.MirroredStrategy(devices)


def read_tf_config(text: str) -> Any:
    """``(index, workers)`` from ``TF_CONFIG``'s text, checked; a one-line ConfigError says what is wrong."""

    def bad(problem: str) -> Any:
        return ConfigError(f"TF_CONFIG {problem}; write it as {EXAMPLE} (the same worker list on every worker, each "
                           "its own index)")

    try:
        data = json.loads(text)
    except ValueError:
        raise bad("is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), dict):
        raise bad('has no "cluster"')
    jobs = data["cluster"]
    workers = jobs.get("worker")
    if not isinstance(workers, list) or not workers or not all(isinstance(w, str) for w in workers):
        raise bad('has no "worker" list of "host:port" addresses in "cluster"')
    others = sorted(set(jobs) - {"worker"})
    if others:
        raise bad(f"has jobs {others}; tl uses the worker list only (worker 0 is the chief): put every address "
                  'in "worker"')
    for address in workers:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise bad(f'has the address "{address}"; addresses are "host:port"')
    task = data.get("task")
    if not isinstance(task, dict) or task.get("type") != "worker":
        raise bad('has no "task" of type "worker"')
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise bad(f'has the task index {json.dumps(index)}; it must be 0 to {len(workers) - 1}, this worker\'s place '
                  "in the list")
    return index, workers


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [SHARED["distribute"], SHARED["worker_timeout"]]


@hookimpl(trylast=True)
def tl_cluster(config: RunConfig, reporter: Reporter) -> Cluster | None:
    global _strategy

    _strategy = None
    text = os.environ.get("TF_CONFIG", "").strip()
    if config.options["distribute"] == "mirrored" and text:
        raise ConfigError('"distribute" is "mirrored" (one process on this machine\'s devices), but TF_CONFIG is set; '
                          'set "distribute": "auto" or "multi_worker" to join the workers it lists, or unset TF_CONFIG')
    if not text:
        if config.options["distribute"] == "multi_worker":
            raise ConfigError(f'"distribute" is "multi_worker", but TF_CONFIG is not set; set it on every worker '
                              f'({EXAMPLE}), or set "distribute": "auto"')
        return None  # alone: the devices step (tl_devices) sets up a MirroredStrategy for several devices
    index, workers = read_tf_config(text)
    if len(workers) == 1:
        return None
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=config.options["worker_timeout"])
    with reporter.activity(f"Worker {index} of {len(workers)}: waiting for the other workers"):
        try:
            meet(index, workers, config.options["worker_timeout"])
            _strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
            cluster = Cluster(index, len(workers), "tf.distribute (MultiWorkerMirroredStrategy)", ", ".join(workers),
                              KerasCollectives(_strategy, len(workers)))
            cluster.gather(index)
        except (OSError, TimeoutError, tf.errors.OpError, RuntimeError) as exc:
            _strategy = None
            raise WorkerError(f"worker {index} of {len(workers)}: the other workers did not all join within "
                              f"{config.options['worker_timeout']} s ({describe_exception(exc)}); start every worker with the "
                              'same TF_CONFIG worker list, or raise "worker_timeout"') from None
    return cluster


def meet(index: int, workers: Sequence[str], timeout: float) -> None:
    """Return once every worker has started, or raise TimeoutError after ``timeout`` seconds.

    TensorFlow's own wait for the workers (in the strategy's constructor) blocks in C++ holding Python's lock:
    no signal handler runs, so neither Ctrl-C nor SIGTERM stops it, and its limit is an hour. So the workers
    meet here first, in Python: worker 0 listens on its own address (before TensorFlow's server takes it),
    the others call it until it answers, and it lets them all go once every one has called.
    """
    deadline = time.monotonic() + timeout
    host, _, port = workers[0].rpartition(":")
    if index != 0:
        while True:
            try:
                with socket.create_connection((host, int(port)), timeout=1.0) as connection:
                    connection.sendall(f"{index}\n".encode())
                    connection.settimeout(max(0.1, deadline - time.monotonic()))
                    if connection.recv(16).startswith(b"go"):
                        return
                    raise TimeoutError(f"worker 0 at {workers[0]} stopped before every worker had joined")
            except (ConnectionRefusedError, socket.timeout, ConnectionResetError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"worker 0 did not answer at {workers[0]}") from None
                time.sleep(0.2)
    joined: dict[int, socket.socket] = {}
    with socket.create_server(("", int(port))) as server:
        server.settimeout(0.2)
        while len(joined) < len(workers) - 1:
            if time.monotonic() > deadline:
                for connection in joined.values():
                    connection.close()
                missing = sorted(set(range(1, len(workers))) - set(joined))
                raise TimeoutError(f"no word from worker{'s' if len(missing) > 1 else ''} "
                                   f"{', '.join(map(str, missing))}")
            try:
                connection, _ = server.accept()
            except socket.timeout:
                continue
            connection.settimeout(2.0)
            try:
                worker = int(connection.recv(16).split(b"\n")[0])
            except (OSError, ValueError):
                connection.close()
                continue
            if worker in joined:  # a restarted worker calls again
                joined[worker].close()
            joined[worker] = connection
    for connection in joined.values():
        with contextlib.suppress(OSError):
            connection.sendall(b"go\n")
    for connection in joined.values():  # the others close first, so this port is free for TensorFlow's server
        with contextlib.suppress(OSError):
            connection.recv(16)
        connection.close()


class KerasCollectives:
    """The core's collectives over the strategy: any picklable value, as bytes gathered from every worker."""

    def __init__(self, strategy: Any, workers: int) -> None:
        self.strategy = strategy
        self.local = strategy.num_replicas_in_sync // workers
        """Replicas per worker (its GPUs): each gives the same row, one is kept."""

    def _gather(self, array: Any) -> Any:
        import tensorflow as tf

        values = self.strategy.experimental_distribute_values_from_function(lambda _: tf.constant(array))
        return self.strategy.gather(values, axis=0).numpy()[::self.local]  # replicas are numbered worker by worker

    def all_gather(self, value: Any) -> Any:
        import numpy as np

        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        lengths = self._gather(np.asarray([len(data)], dtype=np.int64))
        words = -(-int(lengths.max()) // 8)  # the collectives carry int64, not bytes: 8 bytes a word
        padded = np.zeros((1, words), dtype=np.int64)
        padded.view(np.uint8)[0, :len(data)] = np.frombuffer(data, dtype=np.uint8)
        rows = self._gather(padded)
        return [pickle.loads(rows[i].view(np.uint8)[:int(length)].tobytes()) for i, length in enumerate(lengths)]

    def sum(self, values: Sequence[Any]) -> Any:
        import numpy as np

        return self._gather(np.asarray([values], dtype=np.float64)).sum(axis=0).tolist()

    def broadcast(self, value: Any) -> Any:
        return self.all_gather(value)[0]

    def close(self) -> None:
        global _strategy

        _strategy = None
