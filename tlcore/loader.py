"""Streaming a split's images as batches of model input, decoded ahead in threads.

Pillow releases the GIL while it decodes and resizes, so a few threads decode the
next batches while the framework computes on the current one. Memory holds only
the batches in flight, whatever the number of images.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from tlcore.errors import DatasetError
from tlcore.images import UndecodableImage, augment, decode, random_generator, view

if TYPE_CHECKING:
    import numpy as np

    from tlcore.dataset import Split
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Batch:
    """Model input for some images of a split: ``images`` in the preprocessing's layout,
    their ``labels`` (label ids) and ``indices`` (positions in the split's samples)."""

    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Augmentation:
    """Random changes drawn per image from ``(seed, epoch, index)``."""

    names: tuple[str, ...]
    seed: int
    epoch: int = 0


@dataclass(frozen=True)
class Views:
    """``count`` augmented views of every image, besides the image itself (:func:`tlcore.images.view`),
    drawn per image from ``(seed, index)``: a batch then holds ``count + 1`` inputs per image, image by image."""

    count: int
    names: tuple[str, ...]
    seed: int

    def of(self, pixels: np.ndarray, index: int) -> list[np.ndarray]:
        rng = random_generator(self.seed, 0x71E3, index)
        return [pixels] + [view(pixels, number, self.names, rng) for number in range(1, self.count + 1)]


class ImageBatches:
    """Iterate over batches of ``split`` (all of it, or the sample ``order`` given).

    Images that cannot be decoded are left out of their batch; with
    ``bad_images="error"`` the first one stops the iteration with a DatasetError.
    After iterating, :attr:`undecodable` lists ``(index, reason)`` of those left out.
    ``raw=True`` gives uint8 RGB pixels (n, size, size, 3) instead of model input. With ``views``,
    each image comes with its augmented views (``n * (views.count + 1)`` inputs for n images), and a
    batch holds as many images as keep its inputs within ``batch_size``.
    """

    def __init__(self, split: Split, preprocessing: Preprocessing, batch_size: int, *,
                 order: Sequence[int] | None = None, augmentation: Augmentation | None = None,
                 bad_images: str = "skip", raw: bool = False, workers: int | None = None,
                 views: Views | None = None):
        self.split = split
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.order = list(range(len(split))) if order is None else list(order)
        self.augmentation = augmentation
        self.bad_images = bad_images
        self.raw = raw
        self.views = views
        self.workers = workers or default_workers()
        self.undecodable: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Batch]:
        per_batch = max(1, self.batch_size // (self.views.count + 1)) if self.views else self.batch_size
        chunks = [self.order[start:start + per_batch] for start in range(0, len(self.order), per_batch)]
        self.undecodable = []
        executor = ThreadPoolExecutor(self.workers, thread_name_prefix="tl-decode")
        pending: deque[Future] = deque()
        ahead = iter(chunks)

        def submit_next() -> None:
            chunk = next(ahead, None)
            if chunk is not None:
                pending.append(executor.submit(self._load, chunk))

        try:
            for _ in range(self.workers + 1):  # one batch ahead per thread, and the next in line
                submit_next()
            while pending:
                batch, failed = pending.popleft().result()
                submit_next()
                self._record(failed)
                if batch is not None:
                    yield batch
        finally:
            for future in pending:
                future.cancel()
            executor.shutdown(wait=False, cancel_futures=True)

    def _record(self, failed: list[tuple[int, str]]) -> None:
        if failed and self.bad_images == "error":
            index, reason = failed[0]
            raise DatasetError(
                f'{self.split.samples[index][0]}: this image cannot be decoded ({reason}); remove or replace it, '
                'or set "bad_images": "skip"'
            )
        self.undecodable.extend(failed)

    def _load(self, chunk: list[int]) -> tuple[Batch | None, list[tuple[int, str]]]:
        import numpy as np

        size = self.preprocessing.size
        copies = self.views.count + 1 if self.views else 1
        pixels = np.empty((len(chunk) * copies, size, size, 3), dtype=np.uint8)
        kept: list[int] = []
        failed: list[tuple[int, str]] = []
        for index in chunk:
            path = self.split.samples[index][0]
            try:
                image = decode(str(path), size)
            except UndecodableImage as exc:
                failed.append((index, str(exc)))
                continue
            if self.augmentation is not None:
                rng = random_generator(self.augmentation.seed, self.augmentation.epoch, index)
                image = augment(image, self.augmentation.names, rng)
            if self.views is not None:
                pixels[len(kept) * copies:(len(kept) + 1) * copies] = self.views.of(image, index)
            else:
                pixels[len(kept)] = image
            kept.append(index)
        if not kept:
            return None, failed
        pixels = pixels[:len(kept) * copies]
        labels = np.asarray([self.split.samples[i][1] for i in kept], dtype=np.int64)
        images = pixels if self.raw else self.preprocessing.apply(pixels)
        return Batch(images, labels, np.asarray(kept, dtype=np.int64)), failed


def report_undecodable(split: Split, undecodable: Sequence[tuple[int, str]], reporter: Reporter) -> None:
    """Warn once about the images of ``split`` that could not be decoded and were skipped."""
    if not undecodable:
        return
    shown = [f"{split.samples[index][0]} ({reason})" for index, reason in undecodable[:5]]
    more = f" and {len(undecodable) - 5} more" if len(undecodable) > 5 else ""
    reporter.warning(f"{split.name}: skipped {len(undecodable)} image(s) that cannot be decoded: "
                     f"{', '.join(shown)}{more}")


def run_batches(batches: ImageBatches, compute: Callable[[Batch], None], reporter: Reporter,
                label: str, unit: str = "img", delay: float = 0.0, report: bool = True) -> None:
    """Feed every batch to ``compute`` with a progress line ``label N/N [...]`` (shown after ``delay``
    seconds); with ``report``, report skipped images (:attr:`ImageBatches.undecodable` lists them either way)."""
    bar = reporter.progress(len(batches), label=label, unit=unit, delay=delay)
    done = 0
    for batch in batches:
        compute(batch)
        done += len(batch)
        bar.update(done + len(batches.undecodable))
    bar.done = len(batches)
    bar.finish()
    if report:
        report_undecodable(batches.split, batches.undecodable, reporter)
