"""TensorBoard logs of the epoch history, with ``"tensorboard": true``: ``evaluate_result_dir/tensorboard/``
holds the runs ``train`` and ``validation`` (``holdout`` when early stopping watches a hold-out of the training
images: the epochs' ``val_*`` values are measured on it) with the scalars ``epoch_loss`` and ``epoch_accuracy`` (the names
Keras' TensorBoard callback uses, so both curves share a chart); ``tensorboard --logdir`` shows them.

The event files are written with the ``tensorboard`` package's record writer and protocol buffers, which
need no TensorFlow: it works the same for every framework, and TensorFlow is never imported for it.
"""

from __future__ import annotations

import importlib.util
import math
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from tlcore.errors import ConfigError
from tlcore.hookspecs import hookimpl
from tlcore.keys import ConfigKey
from tlcore.outputs import check_owned
from tlcore.training import watched_images

from tlplugins.reports import TENSORBOARD_DIR

if TYPE_CHECKING:
    from pathlib import Path

    from tlcore.config import RunConfig

TAGS = {"loss": ("train", "epoch_loss"), "acc": ("train", "epoch_accuracy"),
        "val_loss": ("validation", "epoch_loss"), "val_acc": ("validation", "epoch_accuracy")}
"""History value -> (run, scalar tag); other values go to ``train`` (``validation`` for ``val_*``) as
``epoch_<name>``."""


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [ConfigKey("tensorboard", "boolean", default=False, affects_model=False,
                      help="also write TensorBoard logs of the epochs into evaluate_result_dir/tensorboard")]


@hookimpl
def tl_on_run_start(config: RunConfig) -> None:
    if config.options.get("tensorboard") and not tensorboard_installed():
        raise ConfigError('"tensorboard": true needs the tensorboard package, which is not installed; '
                          'pip install tensorboard, or set "tensorboard": false')
    if config.options.get("tensorboard"):
        check_owned(config.evaluate_result_dir, [TENSORBOARD_DIR])  # a folder of the user's: refused before training


@hookimpl(trylast=True)
def tl_write_reports(history: Sequence[Mapping[str, float]], path: Path, config: RunConfig) -> list[str] | None:
    if not config.options.get("tensorboard"):
        return None

    write_events(history, path / TENSORBOARD_DIR, "holdout" if watched_images(config) == "hold-out" else "validation")
    return [TENSORBOARD_DIR]


def tag_of(name: str) -> Any:
    if name in TAGS:
        return TAGS[name]
    if name.startswith("val_"):
        return "validation", f"epoch_{name[4:]}"
    return "train", f"epoch_{name}"


def write_events(history: Sequence[Mapping[str, Any]], folder: Path, watched: str = 'validation') -> None:
    """One event file per run folder (``train``, and ``watched`` for the ``val_*`` values), one scalar per
    value and epoch."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    now = time.time()
    runs: dict[str, list[tuple[int, str, float]]] = {"train": [], watched: []}
    for index, epoch in enumerate(history):
        step = int(epoch.get("epoch", index + 1))
        for name, value in epoch.items():
            if name == "epoch" or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            run, tag = tag_of(name)
            runs[watched if run == "validation" else run].append((step, tag, float(value)))
    for run, scalars in runs.items():
        (folder / run).mkdir(parents=True)
        with open(folder / run / f"events.out.tfevents.{int(now)}.tl.v2", "wb") as handle:
            writer = RecordWriter(handle)
            writer.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
            for step, tag, value in scalars:
                summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
                writer.write(event_pb2.Event(wall_time=now, step=step, summary=summary).SerializeToString())
