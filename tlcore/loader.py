"""Streaming a split's images as batches of model input, decoded ahead in threads.

Pillow releases the GIL while it decodes and resizes, so a few threads decode the
next batches while the framework computes on the current one. Memory holds only
the batches in flight, whatever the number of images.

Before that, while the framework starts (importing it and building the base
model keep one core busy and leave the other idle), :func:`decoding_ahead`
decodes the first images of the run in a background thread, up to
:data:`AHEAD_BYTES`; the first pass over the images takes them instead of
decoding them again.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from tlcore.errors import DatasetError
from tlcore.images import UndecodableImage, augment, decode, random_generator, view

if TYPE_CHECKING:
    import numpy as np

    from tlcore.dataset import Split
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter


AHEAD_BYTES = 128 * 2**20
"""Images decoded while the framework starts are kept up to this size (uint8 pixels): about 890 images at
224 x 224, all of a small dataset; the first pass takes (and frees) them."""


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class DecodedAhead:
    """Images decoded by one background thread, in the order given, until :meth:`take` is first called
    (the first pass over the images has begun) or the budget is spent. Each is taken once, by its path."""

    def __init__(self, paths: Iterable[str], size: int, budget: int | None = None) -> None:
        self.size = size
        count = (AHEAD_BYTES if budget is None else budget) // (size * size * 3)
        self._paths = list(itertools.islice(paths, max(0, count)))
        self._ready: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._decode, name="tl-decode-ahead", daemon=True)

    def start(self) -> DecodedAhead:
        if self._paths:
            self._thread.start()
        return self

    def _decode(self) -> None:
        for path in self._paths:
            if self._stopped.is_set():
                return
            try:
                pixels = decode(path, self.size)
            except Exception:  # noqa: BLE001 - never fail a run from here: the pass decodes it again, and says why
                continue
            with self._lock:
                if self._stopped.is_set():
                    return
                self._ready[path] = pixels

    def take(self, path: str, size: int) -> np.ndarray | None:
        """The pixels of ``path`` at ``size`` if they were decoded ahead (once), else None; decoding ahead stops."""
        self._stopped.set()
        if size != self.size:
            return None
        with self._lock:
            return self._ready.pop(path, None)

    def join(self, timeout: float | None = None) -> None:
        """Wait until decoding ahead has finished or stopped."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def decoded(self) -> int:
        """How many images are decoded and not yet taken."""
        with self._lock:
            return len(self._ready)

    def close(self) -> None:
        """Stop decoding and free what was not taken."""
        self._stopped.set()
        with self._lock:
            self._ready.clear()


_AHEAD: ContextVar[DecodedAhead | None] = ContextVar("tl_decoded_ahead", default=None)


@contextmanager
def decoding_ahead(paths: Iterable[str], size: int, budget: int | None = None) -> Iterator[DecodedAhead]:
    """Decode ``paths`` (in the order the first pass reads them) at ``size`` in the background while the block
    runs, up to ``budget`` bytes (by default :data:`AHEAD_BYTES`); every :class:`ImageBatches` made in it takes
    them. What is left is freed when the block ends."""
    ahead = DecodedAhead(paths, size, budget).start()
    token = _AHEAD.set(ahead)
    try:
        yield ahead
    finally:
        _AHEAD.reset(token)
        ahead.close()


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
    batch holds as many images as keep its inputs within ``batch_size``. With ``part`` (a worker's
    :meth:`tlcore.distributed.Cluster.part` of a batch's size), only that part of each batch is loaded, and
    every batch is yielded, an empty part too.
    """

    def __init__(self, split: Split, preprocessing: Preprocessing, batch_size: int, *,
                 order: Sequence[int] | None = None, augmentation: Augmentation | None = None,
                 bad_images: str = "skip", raw: bool = False, workers: int | None = None,
                 views: Views | None = None, part: Callable[[int], slice] | None = None) -> None:
        self.split = split
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.order = list(range(len(split))) if order is None else list(order)
        self.part = part
        self.augmentation = augmentation
        self.bad_images = bad_images
        self.raw = raw
        self.views = views
        self.workers = workers or default_workers()
        self.undecodable: list[tuple[int, str]] = []
        self._ahead = _AHEAD.get()

    def __len__(self) -> int:
        return sum(len(chunk) for chunk in self._chunks())

    def _chunks(self) -> list[list[int]]:
        """The images of each batch; with ``part``, this worker's part of each (possibly none of it)."""
        per_batch = max(1, self.batch_size // (self.views.count + 1)) if self.views else self.batch_size
        chunks = [self.order[start:start + per_batch] for start in range(0, len(self.order), per_batch)]
        return chunks if self.part is None else [chunk[self.part(len(chunk))] for chunk in chunks]

    def __iter__(self) -> Iterator[Batch]:
        chunks = self._chunks()
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
            path = str(self.split.samples[index][0])
            image = self._ahead.take(path, size) if self._ahead is not None else None
            if image is None:
                try:
                    image = decode(path, size)
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
        if not kept and self.part is None:  # a worker's part is yielded even empty: every worker steps every batch
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
