"""``tl init``: a starting configuration.json for a dataset, and a validation split when there is none.

Most people have one folder of images per class and no validation split. ``tl
init DATASET --split 0.2`` moves nothing: it writes the SDK's layout
(``dataset/{training,validation}/<class>/``) beside the configuration, with hard
links to the images (copies where links cannot be made), a seeded, stratified
share of each class for validation.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.errors import ConfigError, DatasetError, OutputError
from tlcore.outputs import StagedDir, write_json_atomic

if TYPE_CHECKING:
    from tlcore.report import Reporter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
SPLIT_FOLDER = "dataset"
MARKER = ".tl-init.json"
"""Written into a split tl init made, so that ``--force`` may replace it (and nothing else)."""


@dataclass
class Written:
    """What ``tl init`` wrote, for the messages and the tests."""

    configuration: Path
    labels: Path | None = None
    split: Path | None = None
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Class name -> (training, validation) images of a split."""
    linked: bool = True


def _classes(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir()
                  if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith("."))


def _images(folder: Path, reporter: Reporter) -> list[Path]:
    found: list[Path] = []
    links: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            (links if path.is_symlink() else found).append(path)
    if links:
        reporter.warning(f"{folder.name}: skipping {len(links)} symbolic link(s), e.g. {links[0]}")
    return found


def _relative(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:  # another drive (Windows)
        return str(path)


def init(dataset: str | Path, reporter: Reporter, *, folder: str | Path | None = None, split: float | None = None,
         seed: int = 0, force: bool = False) -> Written:
    """Write ``configuration.json`` (and what it needs) in ``folder`` (default: the current folder)."""
    dataset = Path(dataset).absolute()
    folder = Path(folder or Path.cwd()).absolute()
    configuration = folder / "configuration.json"
    if not dataset.is_dir():
        raise ConfigError(f"dataset folder not found: {dataset}; give the folder of your images")
    if configuration.exists() and not force:
        raise OutputError(f"{configuration} exists; tl init never replaces it without --force")
    has_split = (dataset / "training").is_dir() and (dataset / "validation").is_dir()
    if has_split and split is not None:
        raise ConfigError(f"{dataset} already has training/ and validation/; leave out --split")
    if not has_split and split is None:
        classes = _classes(dataset)
        what = f"{len(classes)} class folders" if classes else "no class folders"
        raise ConfigError(f"{dataset} has {what} and no training/ and validation/ folders; run "
                          f"`tl init {dataset} --split 0.2` to set a fifth of each class aside for validation")
    if split is not None and not 0 < split < 1:
        raise ConfigError(f"--split is {split}; give the share of each class kept for validation, e.g. 0.2")
    written = Written(configuration=configuration)
    if has_split:
        training, validation = dataset / "training", dataset / "validation"
        labels_file = dataset / "labels.json"
        if not labels_file.exists():
            names = [entry.name for entry in _classes(training)]
            if not names:
                raise DatasetError(f"{training} has no class folders; put the images in {training}/<class name>/")
            write_json_atomic(labels_file, {name: index for index, name in enumerate(names)})
            written.labels = labels_file
    else:
        assert split is not None
        training, validation, labels_file = _split(dataset, folder / SPLIT_FOLDER, split, seed, force, reporter,
                                                   written)
    write_json_atomic(configuration, {
        "dataset_training_dir": _relative(training, folder),
        "dataset_validation_dir": _relative(validation, folder),
        "evaluate_label_file": _relative(labels_file, folder),
        "output_dir": "output",
        "evaluate_result_dir": "output/evaluation",
        "framework": "keras",
        "epochs": 10,
        "batch_size": 32,
        "input_tensor_size": 224,
        "weights": "imagenet",
        "seed": seed,
    })
    _say(reporter, written, training, validation, labels_file)
    return written


def _split(dataset: Path, target: Path, share: float, seed: int, force: bool, reporter: Reporter,
           written: Written) -> tuple[Path, Path, Path]:
    import numpy as np

    if target.exists():
        if not (target / MARKER).is_file():
            raise OutputError(f"{target} exists and was not made by tl init; move it away")
        if not force:
            raise OutputError(f"{target} exists (an earlier tl init); add --force to make it again")
    classes = _classes(dataset)
    if not classes:
        raise DatasetError(f"{dataset} has no class folders; put the images of each class in a folder of its own")
    if dataset == target or target.is_relative_to(dataset):
        raise ConfigError(f"run tl init outside {dataset}: the split it writes must not land inside the dataset")
    plan = []
    for index, entry in enumerate(classes):
        images = _images(entry, reporter)
        if not images:
            reporter.warning(f'class folder "{entry.name}" has no images; it is left out')
            continue
        order = np.random.default_rng([seed, index]).permutation(len(images))
        count = min(len(images) - 1, max(1, round(share * len(images)))) if len(images) >= 2 else 0
        if count == 0:
            reporter.warning(f'class "{entry.name}" has one image; it goes to training only')
        held = {int(i) for i in order[:count]}
        plan += [(image, "validation" if i in held else "training", entry.name) for i, image in enumerate(images)]
        written.counts[entry.name] = (len(images) - count, count)
    bar = reporter.progress(len(plan), label="linking images ", unit="files", delay=2.0)
    with StagedDir(target) as staged:
        assert staged.path is not None
        for done, (image, part, name) in enumerate(plan, start=1):
            destination = staged.path / part / name / image.relative_to(dataset / name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(image, destination)
            except OSError:  # another file system, or no hard links there
                shutil.copy2(image, destination)
                written.linked = False
            bar.update(done)
        bar.finish()
        labels = {name: index for index, name in enumerate(sorted(written.counts))}
        (staged.path / "labels.json").write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n")
        (staged.path / MARKER).write_text(json.dumps({"source": str(dataset), "split": share, "seed": seed}) + "\n")
        staged.publish()
    written.split = target
    written.labels = target / "labels.json"
    return target / "training", target / "validation", target / "labels.json"


def _say(reporter: Reporter, written: Written, training: Path, validation: Path, labels: Path) -> None:
    if written.split is not None:
        train = sum(t for t, _ in written.counts.values())
        held = sum(v for _, v in written.counts.values())
        how = "hard links" if written.linked else "copies (hard links were not possible)"
        reporter.info(f"Wrote {written.split}: {train} training and {held} validation images of "
                      f"{len(written.counts)} classes, as {how} to the originals, which are untouched")
    if written.labels is not None:
        reporter.info(f"Wrote {written.labels}: class folder names sorted, ids from 0")
    reporter.info(f"Wrote {written.configuration} (training {training}, validation {validation}, labels {labels})")
    reporter.info("Next: tl run   (it reads ./configuration.json; edit it first to change epochs, size or weights)")
