"""Features computed once per image, for training a head on a frozen base.

When the base is frozen and images are not randomly augmented, the base computes
the same features for an image in every epoch. So a framework's trainer asks
:func:`cached_features` for them: each image goes through the base once, and the
head trains on the stored features for all epochs. They are kept in memory when
small, otherwise in an on-disk cache under ``output_dir/.tl-cache`` that is
reused only while the model, preprocessing and image files are unchanged; a
cache for anything else is removed. The same for every framework.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from tlcore.distributed import SINGLE, Cluster
from tlcore.loader import ImageBatches, run_batches
from tlcore.outputs import StagedDir, require_free_space

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter

MEMORY_LIMIT_BYTES = 256 * 2**20
"""Features of both splits up to this size stay in memory (``"feature_cache": "auto"``)."""

CACHE_FOLDER = ".tl-cache"
COMPLETE = "complete.json"
SPLITS = ("training", "validation")


@dataclass(frozen=True)
class FeatureSet:
    """The features of one split: ``features`` (n x dim; in memory or memory-mapped),
    the ``labels`` of all n images, and the ``rows`` to use (images that decoded)."""

    features: np.ndarray
    labels: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def batches(self, batch_size: int, order: np.ndarray | None = None,
                with_rows: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
        """``(features, label ids)`` batches of the usable rows, in ``order`` (positions in :attr:`rows`);
        ``with_rows`` adds the batch's row numbers (its images' indices in the split).

        Rows are read by index in ascending order per batch, so a memory-mapped cache stays on disk.
        """
        import numpy as np

        rows = self.rows if order is None else self.rows[order]
        for start in range(0, len(rows), batch_size):
            chosen = np.sort(rows[start:start + batch_size])
            batch = (np.asarray(self.features[chosen], dtype=np.float32), self.labels[chosen])
            yield (*batch, chosen) if with_rows else batch


def can_cache(config: RunConfig, frozen: bool | None = None) -> bool:
    """Whether the base computes the same features in every epoch, so they can be computed once:
    a frozen base (``frozen``; by default, when ``fine_tune_layers`` is 0), no random augmentation,
    and the cache not switched off."""
    frozen = not config.fine_tune_layers if frozen is None else frozen
    return config.feature_cache != "off" and not config.augmentation and frozen


def fingerprint(model_key: str, preprocessing: Preprocessing, dataset: DatasetIndex) -> str:
    """A hash of everything features depend on: the model (its framework's key for weights and
    architecture), the preprocessing and every image file (path, label, size, modification time)."""
    digest = hashlib.sha256()
    digest.update(model_key.encode())
    digest.update(json.dumps(preprocessing.to_dict(), sort_keys=True).encode())
    for name in SPLITS:
        for path, label in getattr(dataset, name).samples:
            stat = os.stat(path)
            digest.update(f"{name}\0{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def cached_features(compute: Callable[[np.ndarray], np.ndarray], dim: int, model_key: Callable[[], str],
                    dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
                    reporter: Reporter, cluster: Cluster = SINGLE) -> dict[str, FeatureSet]:
    """``{split: FeatureSet}`` of the training and validation images.

    :param compute: model input batch -> features (n x ``dim``, float32), in inference mode.
    :param dim: the number of features per image.
    :param model_key: returns a string that changes whenever the features would (the
        framework's hash of weights and architecture); called only for the disk cache.
    :param cluster: with several workers, each computes its share of the images and the
        shares are gathered (in memory, on every worker; the disk cache is for one worker).
    """
    import numpy as np

    labels = {name: np.asarray(getattr(dataset, name).label_ids, dtype=np.int64) for name in SPLITS}
    size = sum(len(getattr(dataset, name)) for name in SPLITS) * dim * 4
    mode = config.feature_cache
    if cluster.size > 1:
        reporter.info(f"Computing features once per image, each of {cluster.size} workers its share ({dim} values "
                      f"each, {size / 2**20:.1f} MiB in memory)")
        sets = {}
        for name in SPLITS:
            split = getattr(dataset, name)
            features = np.zeros((len(split), dim), dtype=np.float32)
            mine = cluster.share(range(len(split)))
            local = _extract(compute, split, preprocessing, config, features, reporter, order=mine)
            bad = []
            for rows, values, undecodable in cluster.gather((mine, features[mine], local)):
                features[rows] = values
                bad += undecodable
            sets[name] = FeatureSet(features, labels[name], _rows(len(features), bad))
        return sets
    if mode == "memory" or (mode == "auto" and size <= MEMORY_LIMIT_BYTES):
        reporter.info(f"Computing features once per image ({dim} values each, {size / 2**20:.1f} MiB in memory)")
        sets = {}
        for name in SPLITS:
            features = np.zeros((len(labels[name]), dim), dtype=np.float32)
            bad = _extract(compute, getattr(dataset, name), preprocessing, config, features, reporter)
            sets[name] = FeatureSet(features, labels[name], _rows(len(features), bad))
        return sets

    root = Path(config.output_dir) / CACHE_FOLDER
    root.mkdir(exist_ok=True)
    with reporter.activity("Checking the feature cache (hashing the model and the image files)", delay=2.0):
        folder = root / f"features-{fingerprint(model_key(), preprocessing, dataset)}"
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
        reporter.info(f"Computing features once per image into {folder} ({size / 2**20:.1f} MiB on disk)")
        undecodable = {}
        with StagedDir(folder) as staged:
            for name in SPLITS:
                out = np.lib.format.open_memmap(staged.path / f"{name}.npy", mode="w+", dtype=np.float32,
                                                shape=(len(labels[name]), dim))
                undecodable[name] = _extract(compute, getattr(dataset, name), preprocessing, config, out, reporter)
                out.flush()
                del out
            (staged.path / COMPLETE).write_text(json.dumps({"dim": dim, "undecodable": undecodable}))
            staged.publish()
    return {
        name: FeatureSet(np.load(folder / f"{name}.npy", mmap_mode="r"), labels[name],
                         _rows(len(labels[name]), undecodable[name]))
        for name in SPLITS
    }


def _extract(compute, split, preprocessing, config, out, reporter, order=None) -> list:
    """Fill the rows of ``out`` with the features of ``split``'s images (those of ``order`` only, when
    given); return ``[(index, reason)]`` of the images that could not be decoded (their rows stay unset)."""
    import numpy as np

    batches = ImageBatches(split, preprocessing, config.batch_size, order=order, bad_images=config.bad_images)

    def store(batch):
        out[batch.indices] = np.asarray(compute(batch.images), dtype=np.float32).reshape(len(batch), -1)

    run_batches(batches, store, reporter, label=f"features of {split.name} images ")
    return [list(item) for item in batches.undecodable]


def _report_cached(split, bad, config, reporter):
    from tlcore.loader import report_undecodable

    if bad and config.bad_images == "error":
        from tlcore.errors import DatasetError

        index, reason = bad[0]
        raise DatasetError(f'{split.samples[index][0]}: this image cannot be decoded ({reason}); remove or replace '
                           'it, or set "bad_images": "skip"')
    report_undecodable(split, [tuple(item) for item in bad], reporter)


def _rows(count: int, bad: list) -> np.ndarray:
    """The row numbers ``0..count-1`` without the ``[index, reason]`` entries of ``bad``."""
    import numpy as np

    return np.setdiff1d(np.arange(count, dtype=np.int64), np.asarray([index for index, _ in bad], dtype=np.int64))
