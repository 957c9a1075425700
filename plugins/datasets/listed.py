"""Datasets listed in a file: a CSV (or JSON Lines) file of image paths and labels, as labelling tools and
competitions export them.

``dataset_training_dir`` and ``dataset_validation_dir`` name a ``.csv`` or ``.jsonl`` file in place of a folder
(``"dataset_format"`` can force the kind). Each row gives an image's path (``path_column``, relative to the
file's folder) and its class by name (``label_column``). Both keys may name one file with a ``split_column``
(``training`` or ``validation`` on each row). ``labels.json`` is optional: without one, the classes get ids in
sorted order (the saved model's labels.json records them). Every check of the folder loader applies, with
one-line errors naming the file and row: missing files, symbolic links, duplicate rows, a path listed under two
labels; unusable images are skipped with a warning (or stop the run, ``"bad_images": "error"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.dataset import DatasetIndex, Split
from tlcore.errors import DatasetError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED, ConfigKey
from tlcore.listed import rows

from tlplugins.datasets import LISTS, list_format
from tlplugins.datasets.imagenet_folder import _listing, load_labels, warn_look_alikes
from tlplugins.datasets.probe import probe

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

SPLITS = {"training": "training", "train": "training", "validation": "validation", "val": "validation",
          "valid": "validation"}
"""Values of the split column, and the split each one names."""


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [
        SHARED["dataset_format"],
        ConfigKey("path_column", "string", default="path",
                  help="the column (CSV) or key (JSON Lines) of a listed dataset that holds each image's path, "
                       "relative to the file"),
        ConfigKey("label_column", "string", default="label",
                  help="the column or key of a listed dataset that holds each image's class name"),
        ConfigKey("split_column", "string", default="split",
                  help="the column or key that says training or validation, when both dataset keys name one file"),
    ]


def read_listing(config: RunConfig, kind: str) -> dict[str, list[tuple[str, Path, str]]]:
    """``{split: [(where, image path, class name)]}`` of the configuration's listing file(s), checked row by row;
    ``where`` names the file and row for messages. Each file is read as its suffix says (``kind`` where it says
    nothing, or where ``"dataset_format"`` forces it)."""
    options = config.options
    columns = (options["path_column"], options["label_column"], options["split_column"])
    one_file = config.dataset_training_dir == config.dataset_validation_dir
    files = {"training": config.dataset_training_dir, "validation": config.dataset_validation_dir}
    found: dict[str, list[tuple[str, Path, str]]] = {"training": [], "validation": []}
    for split, path in files.items():
        if one_file and split == "validation":
            break
        seen: dict[Path, tuple[str, str]] = {}
        file_kind = kind if options.get("dataset_format") == kind else LISTS.get(path.suffix.lower(), kind)
        for number, row in rows(path, file_kind, columns):
            where = f"{path.name} {'row' if file_kind == 'csv' else 'line'} {number}"
            name, label = row[columns[0]], row[columns[1]]
            if not isinstance(name, str) or not name.strip():
                raise DatasetError(f'{where}: no image path in "{columns[0]}"; give each row its image, or remove it')
            if not isinstance(label, str) or not label.strip():
                if not isinstance(label, (int, float)) or isinstance(label, bool):
                    raise DatasetError(f'{where}: no class name in "{columns[1]}"; give each image its class')
                label = str(label)
            target = split
            if one_file:
                value = row.get(columns[2])
                if value is None:
                    raise DatasetError(f'{where}: no "{columns[2]}"; both dataset keys name {path.name}, so every row '
                                       'says "training" or "validation" (or set "dataset_validation_dir" to a file of '
                                       "its own)")
                target = SPLITS.get(str(value).strip().lower(), "")
                if not target:
                    raise DatasetError(f'{where}: "{columns[2]}" is "{value}"; use training or validation')
            image = Path(name.strip())
            image = image if image.is_absolute() else path.parent / image
            if image in seen:
                other_where, other_label = seen[image]
                if other_label == label.strip():
                    raise DatasetError(f"{where} lists {name} again ({other_where} lists it already); remove one row")
                raise DatasetError(f'{where} lists {name} as "{label.strip()}", and {other_where} as "{other_label}"; '
                                   "an image has one class: correct or remove one row")
            seen[image] = (where, label.strip())
            found[target].append((where, image, label.strip()))
    return found


def index_split(name: str, listed: list[tuple[str, Path, str]], labels: dict[str, int], labels_file: Path | None,
                reporter: Reporter, bad_images: str, root: Path) -> Split:
    samples: list[tuple[Path, int]] = []
    skipped: list[tuple[str, str]] = []
    if not listed:
        raise DatasetError(f"the {name} listing has no rows; list the {name} images")
    for where, image, label in listed:
        if label not in labels:
            raise DatasetError(f'{where}: class "{label}" is not in {labels_file}; add it there or correct the row')
        if os.path.islink(image):
            raise DatasetError(f"{where}: {image} is a symbolic link, which tl does not follow; list the file itself")
        if not os.path.lexists(image):
            raise DatasetError(f"{where}: {image} does not exist; correct the path (relative paths start at the "
                               "listing's folder) or remove the row")
        checked = probe(image)
        if checked.problem:
            if bad_images == "error":
                raise DatasetError(f'{where}: {image}: {checked.problem}; remove or replace it, or set "bad_images": '
                                   '"skip"')
            skipped.append((str(image), checked.problem))
            continue
        samples.append((image, labels[label]))
    if skipped:
        reporter.warning(f"{name}: skipped {len(skipped)} unusable image(s): "
                         + _listing([f"{path} ({problem})" for path, problem in skipped]))
    if not samples:
        raise DatasetError(f"the {name} listing has no usable images")
    return Split(name, root, tuple(samples), skipped=tuple(skipped))


@hookimpl(trylast=True)
def tl_load_dataset(config: RunConfig, reporter: Reporter) -> DatasetIndex | None:
    kind = list_format(config)
    if kind is None:
        return None
    listed = read_listing(config, kind)
    names = sorted({label for split in listed.values() for _, _, label in split})
    labels_file = config.evaluate_label_file
    if labels_file is not None:
        labels = load_labels(labels_file)
        warn_look_alikes(labels, labels_file, reporter)
    else:
        labels = {name: index for index, name in enumerate(names)}
    training = index_split("training", listed["training"], labels, labels_file, reporter, config.bad_images,
                           config.dataset_training_dir.parent)
    validation = index_split("validation", listed["validation"], labels, labels_file, reporter, config.bad_images,
                             config.dataset_validation_dir.parent)
    trained = {label for _, _, label in listed["training"]}
    missing = sorted(set(labels) - trained - {label for _, _, label in listed["validation"]})
    if missing:
        reporter.warning(f"{len(missing)} class(es) in {labels_file.name if labels_file else 'labels.json'} are "
                         f"listed nowhere: {_listing(missing)}")
    untrained = sorted({label for _, _, label in listed["validation"]} - trained)
    if untrained:
        reporter.warning(f"validation class(es) with no training images: {_listing(untrained)}; the model cannot "
                         "learn them, so their validation images count as errors")
    dataset = DatasetIndex(labels=labels, training=training, validation=validation, labels_file=labels_file)
    source = f"labels from {labels_file}" if labels_file else "no labels.json: class ids in sorted order"
    files = config.dataset_training_dir.name if config.dataset_training_dir == config.dataset_validation_dir else \
        f"{config.dataset_training_dir.name} and {config.dataset_validation_dir.name}"
    reporter.info(f"Dataset: {len(training)} training and {len(validation)} validation images, {len(labels)} "
                  f"classes, listed in {files} ({source})")
    return dataset
