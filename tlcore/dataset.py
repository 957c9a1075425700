"""The dataset index: plain Python, so checking a dataset needs no framework."""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from tlcore.errors import DatasetError


@dataclass(frozen=True)
class Split:
    """The images of one split: ``samples`` is a tuple of ``(path, label_id)``.

    ``skipped`` lists the ``(path, reason)`` of files that were left out as unusable.
    """

    name: str
    root: Path
    samples: tuple
    skipped: tuple = ()

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[str]:
        return [str(path) for path, _ in self.samples]

    @property
    def label_ids(self) -> list[int]:
        return [label for _, label in self.samples]

    def fingerprint(self) -> str:
        """A hash of the split's images (path, label id, :func:`file_identity`): equal while they are unchanged."""
        digest = hashlib.sha256()
        for path, label in self.samples:
            digest.update(f"{path}\0{label}\0{file_identity(os.stat(path))}\n".encode())
        return digest.hexdigest()[:20]

    def counts(self) -> dict[int, int]:
        """Number of images per label id."""
        counts: dict[int, int] = {}
        for _, label in self.samples:
            counts[label] = counts.get(label, 0) + 1
        return counts


def file_identity(status: os.stat_result) -> str:
    """What tells a file's content apart without reading it: its size and modification time, and its inode and
    status-change time, which a replacement changes even when it keeps the size and sets the modification time
    back (``cp -p``, ``touch -r``): no tool can set the status-change time."""
    return f"{status.st_size}\0{status.st_mtime_ns}\0{status.st_ino}\0{status.st_ctime_ns}"


@dataclass(frozen=True)
class DatasetIndex:
    """Class names, label ids and image paths of the training and validation splits.

    ``labels`` maps class name -> label id; the id is the model's output index.
    """

    labels: Mapping[str, int]
    training: Split
    validation: Split
    labels_file: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        if not self.labels:
            raise DatasetError("the dataset has no classes")
        ids = list(self.labels.values())
        if len(set(ids)) != len(ids):
            raise DatasetError("two classes share a label id; every class needs its own id")
        if any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in ids):
            raise DatasetError("label ids must be non-negative integers")
        known = set(ids)
        for split in (self.training, self.validation):
            stray = {label for _, label in split.samples} - known
            if stray:
                raise DatasetError(f"{split.name} images carry label ids {sorted(stray)} that no class has")

    @property
    def num_outputs(self) -> int:
        """Units of the output layer: the largest id + 1 (ids may have gaps)."""
        return max(self.labels.values()) + 1

    @property
    def unused_ids(self) -> list[int]:
        """Output indices that no class uses (gaps in the ids)."""
        return sorted(set(range(self.num_outputs)) - set(self.labels.values()))

    @property
    def class_names(self) -> list[str | None]:
        """Class names indexed by output index; None where no class has that id."""
        names: list[str | None] = [None] * self.num_outputs
        for name, label in self.labels.items():
            names[label] = name
        return names
