"""Seeded draws that do not depend on who draws them: stratified samples (the hold-out, the calibration images,
``tl init --split``), epoch orders, per-image keys (dropout, views).

Every random choice of training is a function of the run's seed, the epoch and the image alone, so that a
run gives the same result on one worker or several, resumed or not, and the head search
(:mod:`tlcore.head_search`) trains its heads on the same draws as the framework's trainer.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import TYPE_CHECKING, Any, Hashable, Iterable

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import RunConfig


def run_seed(config: RunConfig) -> int:
    """The seed of the run's random draws: the configured ``seed``, or a fresh one per run."""
    return config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)


def stratified(items: Iterable[tuple[str, Hashable]], seed: int, purpose: str, *, share: float | None = None,
               count: int | None = None) -> list[int]:
    """A stratified, seeded sample of ``items`` (``(key, class)`` pairs, the key an image's path): the indices
    chosen, in order.

    With ``share``, that share of each class (rounded, at least one of a class with two or more, never all of
    one); with ``count``, that many in all (every item when there are fewer), taken from the classes in turn.
    Within a class, items are ranked by a hash of the seed, ``purpose``, the class and the key, so the same
    seed chooses the same images wherever they are listed, and adding or removing an image moves few others.
    Hold-outs, calibration images and ``tl init --split`` all sample this way (each its own ``purpose``).
    """
    if (share is None) == (count is None):
        raise ValueError("give share or count")

    def rank(entry: tuple[int, str, Hashable]) -> str:
        text = f"{seed}\0{purpose}\0{entry[2]}\0{entry[1]}"
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    by_class: dict[Hashable, list[tuple[int, str, Hashable]]] = {}
    for index, (key, label) in enumerate(items):
        by_class.setdefault(label, []).append((index, str(key), label))
    ranked = [sorted(members, key=rank) for _, members in sorted(by_class.items(), key=lambda item: str(item[0]))]
    chosen: list[int] = []
    if share is not None:
        for members in ranked:
            if len(members) >= 2:
                take = min(len(members) - 1, max(1, math.floor(share * len(members) + 0.5)))
                chosen += [index for index, _, _ in members[:take]]
    else:
        assert count is not None
        depth = 0
        while len(chosen) < count and any(depth < len(members) for members in ranked):
            chosen += [members[depth][0] for members in ranked if depth < len(members)][:count - len(chosen)]
            depth += 1
    return sorted(chosen)


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """A random order of ``count`` items for ``epoch``, determined by ``seed`` and the epoch alone."""
    import numpy as np

    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(count)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise: well-spread 64-bit values from any uint64 input."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def sample_keys(seed: int, epoch: int, indices: Any) -> np.ndarray:
    """One random key per image of a batch (uint64), from the seed, the epoch and the image's index alone:
    a trainer draws an image's dropout from its key, so that it does not depend on which worker, or which
    batch position, the image has."""
    import numpy as np

    base = _mix(np.asarray([seed * 0x10001 + epoch], dtype=np.uint64))[0]
    return _mix(np.asarray(indices, dtype=np.uint64) ^ base)


def sample_uniform(keys: Any, width: int) -> np.ndarray:
    """``len(keys) x width`` uniform numbers in [0, 1), row i drawn from ``keys[i]`` alone (float32)."""
    import numpy as np

    keys = np.asarray(keys, dtype=np.uint64)
    with np.errstate(over="ignore"):
        counters = keys[:, None] * np.uint64(0x100000001B3) + np.arange(width, dtype=np.uint64)[None, :]
    return ((_mix(counters) >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)


def view_choice(count: int, views: int, seed: int, epoch: int) -> np.ndarray | None:
    """The view (0 .. views-1) each of ``count`` images trains on in ``epoch``, or None with one view."""
    if views <= 1:
        return None
    import numpy as np

    every = np.arange(count, dtype=np.uint64)
    return (_mix(sample_keys(seed, epoch, every) ^ np.uint64(0x7E57)) % np.uint64(views)).astype(np.int64)
