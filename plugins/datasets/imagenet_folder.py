"""The ImageNet-folder dataset: ``<split>/<class>/<image>`` plus labels.json (name -> id)."""

import os
from pathlib import Path

from tlcore.config import read_json_object
from tlcore.dataset import DatasetIndex, Split
from tlcore.errors import ConfigError, DatasetError
from tlcore.hookspecs import hookimpl

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def load_labels(path):
    """Read labels.json: a JSON object of class name -> unique non-negative integer id."""
    try:
        data = read_json_object(path, what="labels file")
    except ConfigError as exc:
        raise DatasetError(str(exc)) from None
    if not data:
        raise DatasetError(f"labels file {path} is empty; list each class as \"name\": id")
    by_id = {}
    for name, label in data.items():
        if not isinstance(label, int) or isinstance(label, bool):
            raise DatasetError(f'labels file {path}: id of "{name}" is {label!r}; ids must be integers')
        if label < 0:
            raise DatasetError(f'labels file {path}: id of "{name}" is {label}; ids must be 0 or more')
        if label in by_id:
            raise DatasetError(f'labels file {path}: "{by_id[label]}" and "{name}" both have id {label}; give each class its own id')
        by_id[label] = name
    return data


def index_split(name, root, labels, labels_file, reporter):
    """Index ``root/<class>/<image>``; every class folder must be in ``labels``."""
    samples, skipped = [], []
    try:
        entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    except OSError as exc:
        raise DatasetError(f"cannot read {name} folder {root}: {exc.strerror}") from None
    classes = [entry for entry in entries if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")]
    stray = [entry.name for entry in entries if entry.is_file() and not entry.name.startswith(".")]
    if stray:
        reporter.warning(f"{name} folder {root}: ignoring {len(stray)} file(s) outside class folders, e.g. {stray[0]}")
    if not classes:
        raise DatasetError(f"{name} folder {root} has no class folders; put images in {root}/<class name>/")
    for entry in classes:
        if entry.name not in labels:
            raise DatasetError(
                f'{name} folder has class "{entry.name}", which is not in {labels_file}; add it there or remove the folder'
            )
        images = []
        for dirpath, dirnames, filenames in os.walk(entry.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                path = os.path.join(dirpath, filename)
                if filename.lower().endswith(IMAGE_SUFFIXES):
                    images.append((Path(path), labels[entry.name]))
                else:
                    skipped.append(path)
        if not images:
            raise DatasetError(f'{name} class folder {entry.path} has no images; add .jpg images or remove the folder')
        samples.extend(images)
    if skipped:
        reporter.warning(
            f"{name}: ignoring {len(skipped)} non-image file(s), e.g. {skipped[0]} "
            f"(images are {', '.join(IMAGE_SUFFIXES)})"
        )
    return Split(name, Path(root), tuple(samples)), {entry.name for entry in classes}


@hookimpl(trylast=True)
def tl_load_dataset(config, reporter):
    labels = load_labels(config.evaluate_label_file)
    training, training_classes = index_split(
        "training", config.dataset_training_dir, labels, config.evaluate_label_file, reporter
    )
    validation, validation_classes = index_split(
        "validation", config.dataset_validation_dir, labels, config.evaluate_label_file, reporter
    )
    missing = sorted(set(labels) - training_classes)
    if missing:
        reporter.warning(
            f"{len(missing)} class(es) in {config.evaluate_label_file.name} have no training folder: "
            + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        )
    dataset = DatasetIndex(labels=labels, training=training, validation=validation, labels_file=config.evaluate_label_file)
    if dataset.unused_ids:
        unused = dataset.unused_ids
        shown = ", ".join(map(str, unused[:10])) + (" ..." if len(unused) > 10 else "")
        reporter.warning(
            f"label ids leave output indices {shown} unused; the model has {dataset.num_outputs} outputs "
            "(largest id + 1) and the unused ones are never predicted"
        )
    reporter.info(
        f"Dataset: {len(training)} training and {len(validation)} validation images, "
        f"{len(labels)} classes ({config.evaluate_label_file})"
    )
    return dataset
