"""``tl init``: a starting configuration.json for a dataset, and a validation split when there is none.

Two layouts are understood:

- the SDK's, ``DATASET/{training,validation}/<class>/`` (``labels.json`` beside them is written
  when it is missing): the configuration points at it;
- a listing, ``LISTING.csv`` or ``.jsonl`` (columns ``path``, ``label`` and, optionally, ``split``): with a split
  column the configuration points at it; without, ``--split 0.2`` writes ``dataset/training.csv`` and
  ``dataset/validation.csv`` beside the configuration (the same images, a stratified share for validation);
- one folder per class, ``DATASET/<class>/`` (or only ``DATASET/training/<class>/``): with
  ``--split 0.2``, tl init writes the SDK's layout beside the configuration
  (``dataset/{training,validation}/<class>/`` and ``labels.json``) with hard links to the
  images (copies where links cannot be made), a seeded, stratified share of each class for
  validation. Nothing in the user's folder is moved, changed or deleted.

Everything is checked before anything is written; the split is built in a hidden staging
folder and renamed into place when complete, and configuration.json is written atomically.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcore import __version__
from tlcore.errors import ConfigError, DatasetError, OutputError
from tlcore.images import IMAGE_SUFFIXES
from tlcore.keys import starter_values
from tlcore.listed import LISTS, rows
from tlcore.outputs import StagedDir, require_free_space, signals_deferred, write_json_atomic
from tlcore.paths import refuse_symlinks
from tlcore.report import Reporter
from tlcore.sampling import stratified

CONFIGURATION = "configuration.json"
LABELS = "labels.json"
SPLIT_FOLDER = "dataset"
MARKER = ".tl-init.json"
"""Written into a split tl init made: ``--force`` may replace that split (and nothing else), and only while it
holds no file tl init did not write."""
DEFAULTS: dict[str, Any] = starter_values()
"""The rest of the configuration tl init writes: what works for most datasets (MobileNetV2, ImageNet weights), as
the keys' declarations say (:attr:`tlcore.keys.ConfigKey.starter`)."""


@dataclass
class Written:
    """What ``tl init`` wrote (for the messages, the tests and the Python API)."""

    configuration: Path
    training: Path
    validation: Path
    labels: Path | None
    """labels.json; None for a listing without one (ids in the class names' sorted order)."""
    labels_written: bool = False
    labels_given: bool = False
    """The split's labels.json is the dataset's own (its ids kept), not numbered by tl init."""
    split: Path | None = None
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Class name -> (training, validation) images of a split."""
    linked: int = 0
    """Images of the split that are hard links to the originals."""
    copied: int = 0
    """Images of the split that are copies (hard links could not be made)."""


@dataclass
class _Scan:
    """The images of one folder per class, and what was left out."""

    classes: dict[str, list[Path]] = field(default_factory=dict)
    """Class name -> image files, sorted (classes without images are absent)."""
    empty: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)


def init(dataset: str | Path, reporter: Reporter | None = None, *, folder: str | Path | None = None,
         split: float | None = None, seed: int = 0, force: bool = False) -> Written:
    """Write ``configuration.json`` (and what it needs) in ``folder`` (default: the current folder) for the
    images in ``dataset``; with ``split`` (a share, e.g. 0.2), also the SDK's layout with a validation split.

    :raises ConfigError: (exit code 2) for a dataset or option that cannot work, saying what to do.
    :raises DatasetError: (exit code 2) for a dataset without usable classes.
    :raises OutputError: (exit code 1) when something would be replaced, or cannot be written.
    """
    reporter = reporter or Reporter()
    typed = str(dataset)
    dataset = Path(os.path.normpath(Path(dataset).expanduser().absolute()))
    folder = Path(folder or Path.cwd()).expanduser().absolute()
    configuration = folder / CONFIGURATION
    if split is not None and not 0 < split < 1:
        raise ConfigError(f"--split is {split:g}; give the share of each class kept for validation, e.g. 0.2")
    if not dataset.exists():
        raise ConfigError(f"dataset folder not found: {dataset}; give the folder of your images (one folder per "
                          "class, or training/ and validation/), or a .csv or .jsonl file listing them")
    listing = dataset.is_file() and dataset.suffix.lower() in LISTS
    if not dataset.is_dir() and not listing:
        raise ConfigError(f"{dataset} is a file; give the folder of your images (one folder per class, or "
                          "training/ and validation/), or a .csv or .jsonl file listing them")
    if configuration.is_dir():
        raise OutputError(f"{configuration} is a folder; move it away, or run tl init in another folder")
    if (configuration.exists() or configuration.is_symlink()) and not force:
        raise OutputError(f"{configuration} exists; tl init never replaces it without --force")
    _check_writable(folder)
    training, validation = dataset / "training", dataset / "validation"
    if listing:
        written = _listed(dataset, typed, folder, configuration, split, seed, force)
    elif training.is_dir() and validation.is_dir():
        if split is not None:
            raise ConfigError(f"{dataset} already has training/ and validation/; leave out --split")
        written = _sdk_layout(dataset, configuration, reporter)
    elif validation.is_dir():
        raise ConfigError(f"{dataset} has validation/ but no training/; put the training images in "
                          f"{training}/<class name>/")
    else:
        source = training if training.is_dir() else dataset
        if split is None:
            classes = _class_folders(source)
            what = f"{len(classes)} class folder{'s' if len(classes) != 1 else ''}" if classes else "no class folders"
            where = "training/ but no validation/ folder" if source == training else \
                f"{what} and no training/ and validation/ folders"
            raise ConfigError(f"{dataset} has {where}; run `tl init {shlex.quote(typed)} --split 0.2` to set a fifth of "
                              "each class aside for validation (your images are not moved)")
        written = _split(dataset, source, folder, configuration, split, seed, force, reporter)
    _write_configuration(configuration, written, seed)
    _say(reporter, written, dataset, seed)
    return written


def _listed(listing: Path, typed: str, folder: Path, configuration: Path, share: float | None, seed: int,
            force: bool) -> Written:
    """A listing with a split column is used as it is; one without is split (``--split``) into
    ``dataset/training.csv`` and ``dataset/validation.csv`` beside the configuration, paths made to point at the
    same images."""
    kind = LISTS[listing.suffix.lower()]
    found = list(rows(listing, kind, ("path", "label", "split")))
    if not found:
        raise DatasetError(f"{listing} lists no images; give each image a row (path, label)")
    given = listing.parent / LABELS
    labels = given if given.is_file() else None
    with_split = all(row.get("split") not in (None, "") for _, row in found)
    if with_split:
        if share is not None:
            raise ConfigError(f'{listing} says each image\'s split (its "split" column); leave out --split')
        return Written(configuration, listing, listing, labels)
    if share is None:
        raise ConfigError(f'{listing} has no "split" column; run `tl init {shlex.quote(typed)} --split 0.2` to set a '
                          'fifth of each class aside for validation, or add a "split" column (training or validation)')
    target = folder / SPLIT_FOLDER  # two small files beside the configuration; the images stay where they are
    _check_replaceable(target, force)
    items = [(str(row["path"]), str(row["label"])) for _, row in found]
    held = set(stratified(items, seed, "split", share=share))
    written = Written(configuration, target / "training.csv", target / "validation.csv", labels, split=target)
    parts: dict[str, list[tuple[str, str]]] = {"training": [], "validation": []}
    for index, (path, label) in enumerate(items):
        image = Path(path) if Path(path).is_absolute() else listing.parent / path
        parts["validation" if index in held else "training"].append((os.path.relpath(image, target), label))
        train, valid = written.counts.get(label, (0, 0))
        written.counts[label] = (train + (index not in held), valid + (index in held))
    try:
        with StagedDir(target) as staged:
            for part, chosen in parts.items():
                with open(staged.path / f"{part}.csv", "w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(("path", "label"))
                    writer.writerows(chosen)
            _publish(staged, {"source": str(listing), "split": share, "seed": seed, "counts": written.counts,
                              "files": ["training.csv", "validation.csv"]})
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}; nothing was written (run tl init in a "
                          "folder you can write to)") from None
    return written


def _check_writable(folder: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tl-write-check-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror}; run tl init in a folder you can write to") \
            from None


def _class_folders(root: Path) -> list[Path]:
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise DatasetError(f"cannot read the folder {root}: {exc.strerror}; check its permissions") from None
    return [entry for entry in entries if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith(".")]


def _listing(items: list[str], shown: int = 3) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _relative(path: Path, start: Path) -> str:
    try:
        return Path(os.path.relpath(path, start)).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path)


def _read_labels(path: Path) -> dict[str, int]:
    """A labels.json the user gave: class name -> unique id of 0 or more."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"cannot read {path} ({type(exc).__name__}); fix it, or remove it and tl init numbers "
                           "the class folders from 0") from None
    ids = list(data.values()) if isinstance(data, dict) else []
    if (not isinstance(data, dict) or not data or len(set(ids)) != len(ids)
            or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids)):
        raise DatasetError(f'{path} must map each class name to its own id of 0 or more ({{"cat": 0, "dog": 1}}); '
                           "fix it, or remove it and tl init numbers the class folders from 0")
    return data


# --- the SDK's layout: training/ and validation/ are there ------------------------------------------------


def _sdk_layout(dataset: Path, configuration: Path, reporter: Reporter) -> Written:
    refuse_symlinks(dataset, "tl init")  # the configuration names it, and tl run refuses links in configured paths
    training, validation = dataset / "training", dataset / "validation"
    names = [entry.name for entry in _class_folders(training)]
    if not names:
        raise DatasetError(f"{training} has no class folders; put the images of each class in "
                           f"{training}/<class name>/")
    untrained = sorted({entry.name for entry in _class_folders(validation)} - set(names))
    if untrained:
        reporter.warning(f"validation class folder(s) with no training folder: {_listing(untrained)}; the model "
                         "cannot learn them")
    labels_file = dataset / LABELS
    written = Written(configuration, training, validation, labels_file)
    if labels_file.exists():
        known = _read_labels(labels_file)
        missing = sorted(set(names) - set(known))
        if missing:
            reporter.warning(f"{labels_file} has no id for class folder(s) {_listing(missing)}; tl run stops on "
                             "them: add them to it")
        return written
    labels = {name: index for index, name in enumerate(names)}
    try:
        write_json_atomic(labels_file, labels)
    except OSError:  # a read-only dataset: labels.json goes beside the configuration instead
        labels_file = configuration.parent / LABELS
        if labels_file.exists():
            raise OutputError(f"cannot write {dataset / LABELS} (read-only?), and {labels_file} exists; write "
                              f"{dataset / LABELS} yourself (class name -> id from 0)") from None
        try:
            write_json_atomic(labels_file, labels)
        except OSError as exc:
            raise OutputError(f"cannot write {labels_file}: {exc.strerror}") from None
    written.labels, written.labels_written = labels_file, True
    return written


# --- one folder per class: write a split ---------------------------------------------------------------------


def _split(dataset: Path, source: Path, folder: Path, configuration: Path, share: float, seed: int, force: bool,
           reporter: Reporter) -> Written:
    real = source.resolve()
    target = _target(dataset, real, folder)
    _check_replaceable(target, force)
    scan = _scan(real, reporter)
    _warn_left_out(scan, source, reporter)
    if not scan.classes:
        raise DatasetError(f"{source} has no class folders with images; put the images of each class in a folder "
                           f"of its own, e.g. {source}/cat/*.jpg")
    given = dataset.resolve() / LABELS
    if given.is_file():
        labels = _read_labels(given)
        missing = sorted(set(scan.classes) - set(labels))
        if missing:
            raise DatasetError(f'{given} has no id for class "{missing[0]}"; add it, or remove {given.name} and tl '
                               "init numbers the class folders from 0")
    else:
        labels = {name: index for index, name in enumerate(sorted(scan.classes))}
    plan: list[tuple[Path, str]] = []
    written = Written(configuration, target / "training", target / "validation", target / LABELS,
                      labels_written=True, labels_given=given.is_file(), split=target)
    for name, images in scan.classes.items():
        chosen = stratified(((image.relative_to(real / name).as_posix(), name) for image in images), seed, "split",
                            share=share)
        held = {images[index] for index in chosen}
        if len(images) == 1:
            reporter.warning(f'class "{name}" has one image; it goes to training only')
        for image in images:
            part = "validation" if image in held else "training"
            plan.append((image, f"{part}/{name}/{image.relative_to(real / name).as_posix()}"))
        written.counts[name] = (len(images) - len(held), len(held))
    link_works = _can_link(plan[0][0], folder)
    if not link_works:
        require_free_space(folder, sum(image.stat().st_size for image, _ in plan) + 2**20, "copying the images")
    _write_split(target, plan, labels, {"source": str(source), "split": share, "seed": seed}, link_works, reporter,
                 written)
    return written


def _target(dataset: Path, real: Path, folder: Path) -> Path:
    """``<folder>/dataset``, or ``<folder>/<name>_split`` when that is the user's own folder (or holds it)."""
    mine = dataset.resolve()

    def overlaps(target: Path) -> bool:
        resolved = target.resolve()
        return any(a.is_relative_to(b) for a, b in ((resolved, mine), (mine, resolved), (resolved, real),
                                                     (real, resolved)))

    for target in (folder / SPLIT_FOLDER, folder / f"{dataset.name}_split"):
        if not overlaps(target):
            return target
    raise ConfigError(f"run tl init outside {dataset}: the split it writes must not land inside the dataset")


def _check_replaceable(target: Path, force: bool) -> None:
    """A split tl init made may be replaced with ``--force``, while it holds only what tl init wrote."""
    if not target.exists() and not target.is_symlink():
        return
    marker = target / MARKER
    if target.is_symlink() or not target.is_dir() or not marker.is_file():
        raise OutputError(f"{target} exists and was not made by tl init; move it away (or run tl init in another "
                          "folder)")
    if not force:
        raise OutputError(f"{target} exists (an earlier tl init); add --force to make it again")
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is None:
        return
    known = set(recorded) | {LABELS, MARKER}
    for root, dirs, names in os.walk(target):
        for name in sorted(names) + sorted(d for d in dirs if os.path.islink(os.path.join(root, d))):
            relative = Path(root, name).relative_to(target).as_posix()
            if relative not in known:
                raise OutputError(f"{target} holds {relative}, which tl init did not write; move it away, or remove "
                                  f"{target} yourself (--force replaces only what tl init wrote)")


def _scan(root: Path, reporter: Reporter) -> _Scan:
    scan = _Scan()
    bar = reporter.progress(None, label="finding images ", unit="files", delay=2.0)
    seen = 0
    try:
        entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    except OSError as exc:
        raise DatasetError(f"cannot read the folder {root}: {exc.strerror}; check its permissions") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            scan.links.append(entry.path)
        elif entry.is_dir():
            images: list[Path] = []
            for current, dirs, names in os.walk(entry.path, onerror=_unreadable):
                scan.links += [os.path.join(current, d) for d in dirs if os.path.islink(os.path.join(current, d))]
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(current, d)))
                for name in sorted(names):
                    path = os.path.join(current, name)
                    if name.startswith("."):
                        continue
                    if os.path.islink(path):
                        scan.links.append(path)
                    elif name.lower().endswith(IMAGE_SUFFIXES):
                        images.append(Path(path))
                    else:
                        scan.others.append(path)
                    seen += 1
                    bar.update(seen)
            if images:
                scan.classes[entry.name] = images
            else:
                scan.empty.append(entry.name)
        elif entry.name != LABELS:
            scan.stray.append(entry.name)
    bar.finish()
    return scan


def _unreadable(error: OSError) -> None:
    raise DatasetError(f"cannot read the folder {error.filename}: {error.strerror}; check its permissions")


def _warn_left_out(scan: _Scan, source: Path, reporter: Reporter) -> None:
    if scan.links:
        reporter.warning(f"skipping {len(scan.links)} symbolic link(s), which tl does not follow: "
                         f"{_listing(scan.links)} (put the files themselves in the class folders)")
    if scan.others:
        reporter.warning(f"skipping {len(scan.others)} file(s) that are not images by name: {_listing(scan.others)} "
                         f"(images are {', '.join(IMAGE_SUFFIXES)})")
    if scan.stray:
        reporter.warning(f"{source}: skipping {len(scan.stray)} file(s) outside class folders: {_listing(scan.stray)}")
    for name in scan.empty:
        reporter.warning(f'class folder "{name}" has no images; it is left out')


def _can_link(image: Path, folder: Path) -> bool:
    """Whether hard links to the images can be made in ``folder`` (same file system, allowed)."""
    probe = Path(tempfile.mkdtemp(prefix=".tl-link-check-", dir=folder))
    try:
        os.link(image, probe / "image")
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _write_split(target: Path, plan: list[tuple[Path, str]], labels: dict[str, int], record: dict[str, Any],
                 link: bool, reporter: Reporter, written: Written) -> None:
    verb = "linking" if link else "copying"
    try:
        with StagedDir(target) as staged:
            bar = reporter.progress(len(plan), label=f"{verb} images ", unit="files", delay=1.0)
            for done, (image, relative) in enumerate(plan, start=1):
                destination = staged.path / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                if link:
                    try:
                        os.link(image, destination)
                        written.linked += 1
                        bar.update(done)
                        continue
                    except OSError:  # this one cannot be linked (e.g. not the owner, with protected hard links)
                        pass
                shutil.copy2(image, destination)
                written.copied += 1
                bar.update(done)
            bar.finish()
            (staged.path / LABELS).write_text(json.dumps(dict(sorted(labels.items(), key=lambda kv: kv[1])), indent=2,
                                                         ensure_ascii=False) + "\n", encoding="utf-8")
            _publish(staged, {**record, "counts": written.counts, "files": [relative for _, relative in plan]})
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}; nothing was written (free some space, "
                          "or run tl init in another folder)") from None


def _publish(staged: StagedDir, record: dict[str, Any]) -> None:
    """Record what tl init wrote (``--force`` replaces only that), then put the staged split in place."""
    (staged.path / MARKER).write_text(json.dumps({"tl_version": __version__, **record}, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    with signals_deferred():
        staged.publish()


# --- the configuration and the messages ------------------------------------------------------------------


def _write_configuration(configuration: Path, written: Written, seed: int) -> None:
    folder = configuration.parent
    values = {
        "dataset_training_dir": _relative(written.training, folder),
        "dataset_validation_dir": _relative(written.validation, folder),
        **({"evaluate_label_file": _relative(written.labels, folder)} if written.labels else {}),
        **DEFAULTS,
        "seed": seed,
    }
    try:
        if configuration.is_symlink():
            configuration.unlink()  # --force replaces the link, never the file it points to
        write_json_atomic(configuration, values)
    except OSError as exc:
        raise OutputError(f"cannot write {configuration}: {exc.strerror}; run tl init in a folder you can write "
                          "to") from None


def _say(reporter: Reporter, written: Written, dataset: Path, seed: int) -> None:
    if written.split is not None:
        train = sum(t for t, _ in written.counts.values())
        held = sum(v for _, v in written.counts.values())
        if not written.copied:
            how = f"as hard links to the originals in {dataset}, which are untouched"
        elif not written.linked:
            how = f"as copies of the originals in {dataset} (hard links cannot be made here), which are untouched"
        else:
            how = (f"as {written.linked} hard links and {written.copied} copies of the originals in {dataset}, "
                   "which are untouched")
        if written.training.suffix == ".csv":
            how = f"listing the images {dataset} lists, which is untouched"
        reporter.info(f"Wrote {written.split}: {train} training and {held} validation images of "
                      f"{len(written.counts)} classes, {how}; the split is stratified and seeded (--seed {seed} "
                      "makes it again)")
        if written.linked:
            reporter.info("  (a hard link is the same file under another name: edit images in your folder, not here)")
    if written.labels is None:
        reporter.info("Labels: the class names of the listing, ids in sorted order (no labels.json beside it)")
    elif written.labels_written:
        how = f"the ids of {dataset / LABELS}" if written.labels_given else "class folder names sorted, ids from 0"
        reporter.info(f"Wrote {written.labels}: {how}")
    else:
        reporter.info(f"Using {written.labels}")
    reporter.info(f"Wrote {written.configuration}: framework keras, MobileNetV2 with ImageNet weights, "
                  f"{DEFAULTS['epochs']} epochs, {DEFAULTS['input_tensor_size']} px; edit it to change them "
                  "(tl config schema lists every key)")
    reporter.info("Next: tl run")

