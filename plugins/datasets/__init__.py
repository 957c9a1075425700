"""The built-in dataset loaders: the ImageNet-style folder (:mod:`.imagenet_folder`) and the listing in a CSV or
JSON Lines file (:mod:`.listed`); the configuration's dataset paths (and ``"dataset_format"``) choose one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlcore.listed import LISTS

if TYPE_CHECKING:
    from tlcore.config import RunConfig

__all__ = ["LISTS", "list_format"]


def list_format(config: RunConfig) -> str | None:
    """``csv`` or ``jsonl`` when the configuration's dataset is listed in a file; None for folders."""
    chosen = config.options.get("dataset_format", "auto")
    if chosen in ("csv", "jsonl"):
        return str(chosen)
    if chosen == "folder" or config.dataset_training_dir.is_dir():
        return None
    return LISTS.get(config.dataset_training_dir.suffix.lower())
