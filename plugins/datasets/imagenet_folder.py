"""The ImageNet-folder dataset: ``<split>/<class>/<image>`` plus labels.json (name -> id).

Every file is checked from its first bytes (:mod:`tlplugins.datasets.probe`): empty,
truncated, or non-image files are skipped with a warning that names them
(``"bad_images": "skip"``, the default) or stop the run (``"error"``).
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tlcore.config import read_json_object
from tlcore.dataset import DatasetIndex, Split
from tlcore.errors import ConfigError, DatasetError
from tlcore.hookspecs import hookimpl
from tlcore.images import IMAGE_SUFFIXES
from tlcore.keys import SHARED, ConfigKey

from tlplugins.datasets import LISTS, list_format
from tlplugins.datasets.probe import probe

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

SHOWN = 5
MAX_LABEL_ID = 65535
"""The output layer has (largest id + 1) units, so ids are kept to a sane range."""


def load_labels(path: Path) -> Any:
    """Read labels.json: a JSON object of class name -> unique non-negative integer id."""
    try:
        data = read_json_object(path, what="labels file")
    except ConfigError as exc:
        raise DatasetError(str(exc)) from None
    if not data:
        raise DatasetError(f'labels file {path} is empty; list each class as "name": id')
    by_id: dict[int, str] = {}
    for name, label in data.items():
        if not isinstance(label, int) or isinstance(label, bool):
            raise DatasetError(f'labels file {path}: id of "{name}" is {label!r}; ids must be integers')
        if label < 0:
            raise DatasetError(f'labels file {path}: id of "{name}" is {label}; ids must be 0 or more')
        if label > MAX_LABEL_ID:
            raise DatasetError(
                f'labels file {path}: id of "{name}" is {label}; ids must be at most {MAX_LABEL_ID} '
                "(the model gets one output per id up to the largest)"
            )
        if label in by_id:
            raise DatasetError(
                f'labels file {path}: "{by_id[label]}" and "{name}" both have id {label}; give each class its own id'
            )
        by_id[label] = name
    return data


def _listing(items: Sequence[str]) -> Any:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _unreadable(error: OSError) -> None:
    raise DatasetError(f"cannot read the folder {error.filename}: {error.strerror}; check its permissions") from None


def index_split(name: str, root: Path, labels: Any, labels_file: Path | None, reporter: Reporter,
                bad_images: str = 'skip') -> Any:
    """Index ``root/<class>/<image>``; every class folder must be in ``labels``."""
    samples: list[tuple[Path, int]] = []
    skipped: list[tuple[str, str]] = []
    ignored: list[str] = []
    links: list[str] = []
    try:
        entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    except OSError as exc:
        raise DatasetError(f"cannot read {name} folder {root}: {exc.strerror}") from None
    classes = [entry for entry in entries if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")]
    linked = [entry.name for entry in entries if entry.is_symlink() and not entry.name.startswith(".")]
    if linked:
        reporter.warning(
            f"{name} folder {root}: ignoring {len(linked)} symbolic link(s), which are not followed: {_listing(linked)}"
        )
    stray = [entry.name for entry in entries if entry.is_file() and not entry.name.startswith(".")]
    if stray:
        reporter.warning(f"{name} folder {root}: ignoring {len(stray)} file(s) outside class folders: {_listing(stray)}")
    if not classes:
        raise DatasetError(f"{name} folder {root} has no class folders; put images in {root}/<class name>/")
    bar = reporter.progress(None, label=f"indexing {name} images ", unit="files", delay=2.0)
    for entry in classes:
        if entry.name not in labels:
            same = [label for label in labels if unicodedata.normalize("NFC", label) ==
                    unicodedata.normalize("NFC", entry.name)]
            if same:
                raise DatasetError(
                    f'{name} folder has class "{entry.name}", which is not in {labels_file}: it has "{same[0]}", '
                    f"which differs only in Unicode normalisation ({form(entry.name)} folder name, {form(same[0])} "
                    "key); rename the folder or the key so that both are written the same way (NFC is usual)"
                )
            raise DatasetError(
                f'{name} folder has class "{entry.name}", which is not in {labels_file}; add it there or remove the folder'
            )
        found = 0
        for dirpath, dirnames, filenames in os.walk(entry.path, onerror=_unreadable):
            linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d)) and not d.startswith(".")]
            links += [os.path.join(dirpath, d) for d in linked]
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in linked)
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                path = os.path.join(dirpath, filename)
                if os.path.islink(path):  # the rule for every configured path: no symbolic links
                    links.append(path)
                    continue
                if not filename.lower().endswith(IMAGE_SUFFIXES):
                    ignored.append(path)
                    continue
                found += 1
                bar.update(len(samples) + len(skipped) + 1)
                checked = probe(path)
                if checked.problem:
                    if bad_images == "error":
                        raise DatasetError(
                            f'{path}: {checked.problem}; remove or replace it, or set "bad_images": "skip"'
                        )
                    skipped.append((path, checked.problem))
                    continue
                samples.append((Path(path), labels[entry.name]))
        if not found:
            raise DatasetError(f"{name} class folder {entry.path} has no images; add .jpg images or remove the folder")
    bar.finish()
    if links:
        reporter.warning(
            f"{name}: ignoring {len(links)} symbolic link(s), which are not followed: {_listing(links)} "
            "(put the files themselves in the dataset)"
        )
    if ignored:
        reporter.warning(
            f"{name}: ignoring {len(ignored)} non-image file(s): {_listing(ignored)} "
            f"(images are {', '.join(IMAGE_SUFFIXES)})"
        )
    if skipped:
        reporter.warning(
            f"{name}: skipped {len(skipped)} unusable image(s): "
            + _listing([f"{path} ({problem})" for path, problem in skipped])
        )
    used = {label for _, label in samples}
    empty = sorted(entry.name for entry in classes if labels[entry.name] not in used)
    if empty:
        raise DatasetError(f'{name} class "{empty[0]}" has no usable images; add images or remove the folder')
    split = Split(name, Path(root), tuple(samples), skipped=tuple(skipped))
    return split, {entry.name for entry in classes}


def form(text: str) -> str:
    """Which Unicode normalisation ``text`` is written in: NFC (composed, as macOS' apps and most editors write), NFD
    (decomposed, as macOS' file system once stored names), or neither."""
    for name in ("NFC", "NFD"):
        if unicodedata.is_normalized(name, text):  # type: ignore[arg-type]
            return name
    return "mixed"


def warn_look_alikes(labels: Any, labels_file: Path, reporter: Reporter) -> None:
    """Warn about class names that differ only in Unicode normalisation or in case: they look like one class in
    the results, and their folders cannot both exist on macOS or Windows."""
    seen: dict[str, str] = {}
    for label in sorted(labels):
        key = unicodedata.normalize("NFC", label).casefold()
        if key in seen:
            how = "in case" if unicodedata.normalize("NFC", label) != unicodedata.normalize("NFC", seen[key]) \
                else "in Unicode normalisation"
            reporter.warning(f'{labels_file.name} has the classes "{seen[key]}" and "{label}", which differ only {how}: '
                             "they look alike in the results, and their folders cannot both exist on macOS or Windows; "
                             "rename one")
        else:
            seen[key] = label


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [SHARED["dataset_format"]]


@hookimpl(trylast=True)
def tl_load_dataset(config: RunConfig, reporter: Reporter) -> DatasetIndex | None:
    if list_format(config) is not None:
        return None  # a listing: tlplugins.datasets.listed reads it
    for key in ("dataset_training_dir", "dataset_validation_dir"):
        path = getattr(config, key)
        if not path.is_dir():
            raise DatasetError(f'"{key}" is the file {path}, and the dataset is read as folders'
                               + (' ("dataset_format": "folder")' if path.suffix.lower() in LISTS else "")
                               + f"; give the folder of one sub-folder per class, or a {' or '.join(LISTS)} file "
                               "listing the images")
    if config.evaluate_label_file is None:
        raise DatasetError(f"labels file not found: {config.dataset_training_dir.parent / 'labels.json'}; put "
                           'labels.json beside the training folder or set "evaluate_label_file"')
    labels = load_labels(config.evaluate_label_file)
    warn_look_alikes(labels, config.evaluate_label_file, reporter)
    if config.dataset_validation_dir == config.dataset_training_dir:
        reporter.warning(
            "the validation folder is the training folder: Top-1 will measure how well the model remembers "
            "its training images, not how well it works on new ones"
        )
    bad_images = config.bad_images
    training, training_classes = index_split(
        "training", config.dataset_training_dir, labels, config.evaluate_label_file, reporter, bad_images
    )
    validation, validation_classes = index_split(
        "validation", config.dataset_validation_dir, labels, config.evaluate_label_file, reporter, bad_images
    )
    missing = sorted(set(labels) - training_classes)
    if missing:
        reporter.warning(
            f"{len(missing)} class(es) in {config.evaluate_label_file.name} have no training folder: {_listing(missing)}"
        )
    untrained = sorted(validation_classes - training_classes)
    if untrained:
        reporter.warning(
            f"validation class(es) with no training images: {_listing(untrained)}; the model cannot learn them, "
            "so their validation images count as errors"
        )
    dataset = DatasetIndex(labels=labels, training=training, validation=validation, labels_file=config.evaluate_label_file)
    if dataset.unused_ids:
        reporter.warning(
            f"label ids leave output indices {_listing([str(i) for i in dataset.unused_ids])} unused; the model has "
            f"{dataset.num_outputs} outputs (largest id + 1) and no class is trained for the unused ones"
        )
    reporter.info(
        f"Dataset: {len(training)} training and {len(validation)} validation images, "
        f"{len(labels)} classes ({config.evaluate_label_file})"
    )
    return dataset
