"""The state of an interrupted run, saved after every epoch, that ``tl run --resume`` continues from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.errors import ConfigError
from tlcore.training import state as state_file

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.report import Reporter
    from tlcore.training.contract import Steps


def steps_state(steps: Steps) -> Any:
    """What a checkpoint keeps of a phase's steps: their whole state (weights and optimizer) when they can give
    it (``state()``), else their weights (``snapshot()``)."""
    state = getattr(steps, "state", None)
    return ("state", state()) if callable(state) else ("snapshot", steps.snapshot())


def load_steps_state(steps: Steps, saved: Any) -> None:
    kind, state = saved
    if kind == "state" and callable(getattr(steps, "load_state", None)):
        steps.load_state(state)  # type: ignore[attr-defined]
    else:
        steps.restore(state if kind == "snapshot" else state["weights"])


CHECKPOINT_FOLDER = ".tl-checkpoint"
CHECKPOINT_FILE = "state.npz"
"""The checkpoint's state, in a format whose reading runs no code (:mod:`tlcore.training.state`)."""
OLD_CHECKPOINT_FILE = "state.pickle"
"""Where tl once kept it, as a pickle: never read (a pickle can run code), only removed."""


class Checkpoint:
    """The state of a run after its last finished epoch, in ``output_dir/.tl-checkpoint/``: the seed, the
    phase, the history, the trained weights and the optimizer's state. Saved atomically after every epoch,
    removed when the run has written its outputs; ``tl run --resume`` continues from it.

    ``fingerprint`` identifies what was trained (the keys that shape the model, and the images): a
    checkpoint is resumed only while it holds.
    """

    def __init__(self, folder: Path, fingerprint: str, resumed: dict[str, Any] | None = None) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.resumed = resumed
        self.epoch: int | None = resumed["epoch"] if resumed is not None else None
        """The epoch of the state saved last (what ``--resume`` continues after), or None."""

    @classmethod
    def open(cls, config: RunConfig, dataset: DatasetIndex, reporter: Reporter, resume: bool,
             restartable: bool = False) -> Checkpoint:
        """The run's checkpoint: with ``resume``, the interrupted run's (checked); else a fresh one.

        A checkpoint is read only to be resumed: without ``resume`` the folder is removed unread (an output folder
        someone else wrote may hold anything there). With ``restartable`` (a run of several workers, which the
        engine or the cluster's scheduler restarts after a failure: torchrun's ``--max-restarts``, a Kubernetes
        Job), an interrupted run's checkpoint of the same training is resumed without ``--resume``, as Keras'
        ``BackupAndRestore`` does; another training's is removed.

        :raises ConfigError: with ``resume``, when there is nothing to resume, or it was another training.
        """
        folder = config.output_dir / CHECKPOINT_FOLDER
        fingerprint = training_fingerprint(config, dataset)
        if restartable and not resume:
            saved = cls._read(folder / CHECKPOINT_FILE)
            if saved is not None and saved.get("fingerprint") == fingerprint:
                reporter.info(f"Resuming after epoch {saved['epoch']} of {saved['epochs']}: a run of several workers "
                              "continues from the checkpoint the interrupted one left (the workers were restarted)")
                return cls(folder, fingerprint, saved)
        if not resume:
            if folder.is_dir() and not folder.is_symlink():
                reporter.info("Starting over: removing the checkpoint an interrupted run left (tl run --resume "
                              "continues such a run)")
            remove_folder(folder)
            return cls(folder, fingerprint)
        if (folder / OLD_CHECKPOINT_FILE).exists() and not (folder / CHECKPOINT_FILE).exists():
            raise ConfigError(f"{folder / OLD_CHECKPOINT_FILE} was written by an earlier tl as a pickle, which tl no "
                              "longer reads (loading a pickle can run code); run without --resume to start over")
        saved = cls._read(folder / CHECKPOINT_FILE)
        if saved is None:
            raise ConfigError(f"nothing to resume in {config.output_dir}: no interrupted run left a checkpoint "
                              f"there ({CHECKPOINT_FOLDER}/), or it is damaged; run without --resume")
        if saved.get("fingerprint") != fingerprint:
            raise ConfigError(f"{config.config_file.name}: the configuration or the training images changed since "
                              f"the interrupted run (its checkpoint is of epoch {saved['epoch']}); set them back to "
                              "resume it, or run without --resume to start over")
        when = datetime.fromtimestamp((folder / CHECKPOINT_FILE).stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        reporter.info(f"Resuming after epoch {saved['epoch']} of {saved['epochs']} (checkpoint of {when})")
        return cls(folder, fingerprint, saved)

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        if path.is_symlink() or not path.is_file():
            return None
        try:
            state = state_file.load(path)
        except state_file.StateError:  # a damaged checkpoint: as if there were none
            return None
        return state if isinstance(state, dict) and isinstance(state.get("epoch"), int) else None

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint with ``state``, atomically (a crash mid-write keeps the previous one)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile("wb", dir=self.folder, prefix=".state.", delete=False)
        try:
            with handle:
                state_file.dump({**state, "fingerprint": self.fingerprint}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, self.folder / CHECKPOINT_FILE)
            self.epoch = state["epoch"]
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise

    def remove(self) -> None:
        remove_folder(self.folder)


def remove_folder(folder: Path) -> None:
    """Remove the checkpoint folder; a symbolic link put in its place is removed, never followed."""
    if folder.is_symlink():
        folder.unlink()
    else:
        shutil.rmtree(folder, ignore_errors=True)


def training_fingerprint(config: RunConfig, dataset: DatasetIndex) -> str:
    """A hash of what shapes the trained model: the configuration's keys (but the outputs', quantization's and
    precision's) and the training and validation images."""
    keys = {key: value for key, value in config.to_dict().items()
            if key not in config.neutral and key not in ("config_file", "output_dir")}
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode())
    digest.update(dataset.training.fingerprint().encode())
    digest.update(dataset.validation.fingerprint().encode())
    return digest.hexdigest()[:24]
