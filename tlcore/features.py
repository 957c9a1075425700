"""Features computed once per image, for training a head on a frozen base.

When the base is frozen and images are not randomly augmented, the base computes
the same features for an image in every epoch. So a framework's trainer asks
:func:`cached_features` for them: each image goes through the base once, and the
head trains on the stored features for all epochs. They are kept in memory when
small, otherwise in an on-disk cache under ``output_dir/.tl-cache`` that is
reused only while the model, preprocessing and image files are unchanged; a
cache for anything else is removed. The same for every framework.

Augmentation need not turn the cache off: the features of a few augmented views
of each training image (``augmentation_views``: the mirror image, crops) are
computed once beside the image's own, and each epoch trains on one of them per
image, drawn from the seed, the epoch and the image. Augmentation then costs one
extra pass over the training images per view, not one pass per epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from tlcore.dataset import file_identity
from tlcore.distributed import SINGLE, Cluster
from tlcore.errors import DatasetError
from tlcore.images import VIEW_AUGMENTATIONS
from tlcore.loader import Batch, ImageBatches, Views, report_undecodable, run_batches
from tlcore.outputs import StagedDir, require_free_space

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex, Split
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter

MEMORY_LIMIT_BYTES = 256 * 2**20
"""Features of both splits up to this size stay in memory (``"feature_cache": "auto"``)."""
GATHER_BYTES = 64 * 2**20
"""With several workers, the features of their shares are gathered this much per worker at a time."""

CACHE_FOLDER = ".tl-cache"
COMPLETE = "complete.json"
SPLITS = ("training", "validation")
SMALL_CLASS = 50
"""Classes of at most this many training images (on average) make a small dataset: ``augmentation_views``
``"auto"`` gives it augmented views."""
MAX_AUTO_VIEWS = 3


@dataclass(frozen=True)
class FeatureSet:
    """The features of one split: ``features`` (n x dim, or n x views x dim with augmented views; in memory
    or memory-mapped), the ``labels`` of all n images, and the ``rows`` to use (images that decoded)."""

    features: np.ndarray
    labels: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def views(self) -> int:
        """The number of views per image: 1 (the image itself), or more with augmented views."""
        return 1 if self.features.ndim == 2 else self.features.shape[1]

    def batches(self, batch_size: int, order: np.ndarray | None = None, with_rows: bool = False,
                view_of: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, ...]]:
        """``(features, label ids)`` batches of the usable rows, in ``order`` (positions in :attr:`rows`);
        ``with_rows`` adds the batch's row numbers (its images' indices in the split). With views, each
        image's features are those of its view ``view_of[row]`` (by default the image itself, view 0).

        Rows are read by index in ascending order per batch, so a memory-mapped cache stays on disk.
        """
        import numpy as np

        rows = self.rows if order is None else self.rows[order]
        for start in range(0, len(rows), batch_size):
            chosen = np.sort(rows[start:start + batch_size])
            if self.views == 1:
                values = self.features[chosen]
            else:
                values = self.features[chosen, 0 if view_of is None else view_of[chosen]]
            batch = (np.asarray(values, dtype=np.float32), self.labels[chosen])
            yield (*batch, chosen) if with_rows else batch


def in_memory(mode: str, size: int) -> bool:
    """Whether features of ``size`` bytes stay in memory under ``"feature_cache": mode`` (else on disk)."""
    return mode == "memory" or (mode == "auto" and size <= MEMORY_LIMIT_BYTES)


def can_cache(config: RunConfig, frozen: bool | None = None, views: int = 0) -> bool:
    """Whether the base computes the same features in every epoch, so they can be computed once:
    a frozen base (``frozen``; by default, when ``fine_tune_layers`` is 0), the cache not switched off,
    and no random augmentation, or augmentation by a number of ``views`` computed once."""
    frozen = not config.fine_tune_layers if frozen is None else frozen
    return config.feature_cache != "off" and frozen and (not config.augmentation or views > 0)


def view_count(config: RunConfig, dataset: DatasetIndex) -> int:
    """The number of augmented views per training image of a frozen base: ``augmentation_views``, or for
    ``"auto"`` up to :data:`MAX_AUTO_VIEWS` on a small dataset (more views the fewer images a class has,
    so that a class has about 100 training samples) and none on a larger one, where the extra passes over
    the images would cost more than augmentation gains."""
    if config.augmentation_views != "auto":
        return int(config.augmentation_views)
    classes = max(1, len(set(dataset.training.label_ids)))
    per_class = len(dataset.training) / classes
    if per_class > SMALL_CLASS or not per_class:
        return 0
    return max(1, min(MAX_AUTO_VIEWS, int(100 // per_class) - 1))


def augmented_views(config: RunConfig, dataset: DatasetIndex, seed: int, frozen: bool | None = None) -> Views | None:
    """The training images' augmented views to compute once (:class:`tlcore.loader.Views`), or None."""
    count = view_count(config, dataset)
    if not count or not can_cache(config, frozen, count):
        return None
    return Views(count, tuple(config.augmentation) or VIEW_AUGMENTATIONS, seed)


def fingerprint(model_key: str, preprocessing: Preprocessing, dataset: DatasetIndex, views: Views | None = None) -> str:
    """A hash of everything features depend on: the model (its framework's key for weights and
    architecture), the preprocessing, the augmented views and every image file (path, label, size,
    modification time)."""
    digest = hashlib.sha256()
    digest.update(model_key.encode())
    digest.update(json.dumps(preprocessing.to_dict(), sort_keys=True).encode())
    if views is not None:
        digest.update(json.dumps([views.count, list(views.names), views.seed]).encode())
    for name in SPLITS:
        for path, label in getattr(dataset, name).samples:
            digest.update(f"{name}\0{path}\0{label}\0{file_identity(os.stat(path))}\n".encode())
    return digest.hexdigest()[:20]


def cached_features(compute: Callable[[np.ndarray], np.ndarray], dim: int, model_key: Callable[[], str],
                    dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
                    reporter: Reporter, cluster: Cluster = SINGLE, views: Views | None = None
                    ) -> dict[str, FeatureSet]:
    """``{split: FeatureSet}`` of the training and validation images (with ``views``, the training
    images' features are those of the image and of its augmented views, n x (views + 1) x dim).

    :param compute: model input batch -> features (n x ``dim``, float32), in inference mode.
    :param dim: the number of features per image.
    :param model_key: returns a string that changes whenever the features would (the
        framework's hash of weights and architecture); called only for the disk cache.
    :param cluster: with several workers, each computes its share of the images and the
        shares are gathered on every worker (in memory, or in a temporary file past the memory limit; the
        disk cache that later runs reuse is for one worker).
    """
    import numpy as np

    labels = {name: np.asarray(getattr(dataset, name).label_ids, dtype=np.int64) for name in SPLITS}
    split_views = {name: views if name == "training" else None for name in SPLITS}  # validation: the images only
    shapes = {name: (len(labels[name]), extra.count + 1, dim) if (extra := split_views[name]) else
              (len(labels[name]), dim) for name in SPLITS}
    size = sum(math.prod(shape) for shape in shapes.values()) * 4
    what = f"{dim} values each" + (f"; {views.count} augmented view{'s' if views.count > 1 else ''} "
                                   f"({', '.join(views.names)}) of each training image" if views else "")
    mode = config.feature_cache
    if cluster.size > 1:
        return _spread_features(compute, dataset, preprocessing, config, reporter, cluster, labels, split_views,
                                shapes, size, what)
    if in_memory(mode, size):
        reporter.info(f"Computing features once per image ({what}, {size / 2**20:.1f} MiB in memory)")
        sets = {}
        for name in SPLITS:
            features = np.zeros(shapes[name], dtype=np.float32)
            bad = _extract(compute, getattr(dataset, name), preprocessing, config, features, reporter,
                           views=split_views[name])
            sets[name] = FeatureSet(features, labels[name], _rows(len(features), bad))
        return sets

    root = Path(config.output_dir) / CACHE_FOLDER
    root.mkdir(exist_ok=True)
    with reporter.activity("Checking the feature cache (hashing the model and the image files)", delay=2.0):
        folder = root / f"features-{fingerprint(model_key(), preprocessing, dataset, views)}"
    for stale in root.glob("features-*"):
        if stale != folder and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    if (folder / COMPLETE).is_file():
        reporter.info(f"Features: reusing the cache {folder} (model, preprocessing and images unchanged)")
        undecodable = json.loads((folder / COMPLETE).read_text())["undecodable"]
        for name in SPLITS:
            _report_cached(getattr(dataset, name), undecodable[name], config, reporter)
    else:
        require_free_space(root, size + 2**20, "the feature cache")
        reporter.info(f"Computing features once per image into {folder} ({what}, {size / 2**20:.1f} MiB on disk)")
        undecodable = {}
        with StagedDir(folder) as staged:
            for name in SPLITS:
                out = np.lib.format.open_memmap(staged.path / f"{name}.npy", mode="w+", dtype=np.float32,
                                                shape=shapes[name])
                undecodable[name] = _extract(compute, getattr(dataset, name), preprocessing, config, out, reporter,
                                             views=split_views[name])
                out.flush()
                del out
            (staged.path / COMPLETE).write_text(json.dumps({"dim": dim, "undecodable": undecodable}))
            staged.publish()
    return {
        name: FeatureSet(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False), labels[name],
                         _rows(len(labels[name]), undecodable[name]))
        for name in SPLITS
    }


def _spread_features(compute: Callable[[Any], Any], dataset: DatasetIndex, preprocessing: Preprocessing,
                     config: RunConfig, reporter: Reporter, cluster: Cluster, labels: Mapping[str, np.ndarray],
                     split_views: Mapping[str, Views | None], shapes: Mapping[str, tuple[int, ...]], size: int,
                     what: str) -> dict[str, FeatureSet]:
    """Each worker computes the features of its share of the images, and the shares are gathered on every
    worker, :data:`GATHER_BYTES` at a time: in memory, or, past :data:`MEMORY_LIMIT_BYTES` (or with
    ``"feature_cache": "disk"``), in a temporary file of this machine's that is gone when the run ends (it is
    unlinked at once: the mapping keeps it while the run needs it). No cache is kept between runs."""
    import numpy as np

    on_disk = not in_memory(config.feature_cache, size)
    where = "in a temporary file" if on_disk else "in memory"
    reporter.info(f"Computing features once per image, each of {cluster.size} workers its share ({what}, "
                  f"{size / 2**20:.1f} MiB {where})")
    if on_disk:
        require_free_space(Path(tempfile.gettempdir()), size + 2**20, "the features",
                           "free some space, or set TMPDIR to a folder with room on every worker")
    sets = {}
    for name in SPLITS:
        split = getattr(dataset, name)
        if on_disk:
            handle, file = tempfile.mkstemp(prefix=f"tl-features-{name}-", suffix=".npy")
            os.close(handle)
            features = np.lib.format.open_memmap(file, mode="w+", dtype=np.float32, shape=shapes[name])
            with contextlib.suppress(OSError):  # gone with the run, however it ends
                os.unlink(file)
        else:
            features = np.zeros(shapes[name], dtype=np.float32)
        mine = cluster.share(range(len(split)))
        local = _extract(compute, split, preprocessing, config, features, reporter, order=mine,
                         views=split_views[name])
        row_bytes = max(1, math.prod(shapes[name][1:]) * 4)
        step = max(1, GATHER_BYTES // row_bytes)
        longest = -(-len(split) // cluster.size)  # every worker gathers as many times
        for start in range(0, longest, step):
            part = mine[start:start + step]
            for rows, values in cluster.gather((part, features[part])):
                if rows:
                    features[rows] = values
        bad = [entry for undecodable in cluster.gather(local) for entry in undecodable]
        sets[name] = FeatureSet(features, labels[name], _rows(len(features), bad))
    return sets


def _extract(compute: Callable[[Any], Any], split: Split, preprocessing: Preprocessing, config: RunConfig,
             out: np.ndarray, reporter: Reporter, order: Sequence[int] | None = None,
             views: Views | None = None) -> list:
    """Fill the rows of ``out`` with the features of ``split``'s images (those of ``order`` only, when
    given; with ``views``, of each image and its views); return ``[(index, reason)]`` of the images that
    could not be decoded (their rows stay unset)."""
    import numpy as np

    batches = ImageBatches(split, preprocessing, config.batch_size, order=order, bad_images=config.bad_images,
                           views=views)

    def store(batch: Batch) -> None:
        step = config.batch_size  # an image with its views may hold more inputs than a batch
        values = [np.asarray(compute(batch.images[start:start + step]), dtype=np.float32)
                  for start in range(0, len(batch.images), step)]
        out[batch.indices] = np.concatenate(values).reshape(len(batch), *out.shape[1:])

    label = f"features of {split.name} images " + (f"and {views.count} view{'s' if views.count > 1 else ''} "
                                                   if views else "")
    run_batches(batches, store, reporter, label=label)
    return [list(item) for item in batches.undecodable]


def _report_cached(split: Split, bad: list, config: RunConfig, reporter: Reporter) -> None:
    if bad and config.bad_images == "error":
        index, reason = bad[0]
        raise DatasetError(f'{split.samples[index][0]}: this image cannot be decoded ({reason}); remove or replace '
                           'it, or set "bad_images": "skip"')
    report_undecodable(split, [tuple(item) for item in bad], reporter)


def _rows(count: int, bad: list) -> np.ndarray:
    """The row numbers ``0..count-1`` without the ``[index, reason]`` entries of ``bad``."""
    import numpy as np

    return np.setdiff1d(np.arange(count, dtype=np.int64), np.asarray([index for index, _ in bad], dtype=np.int64))
