"""Predicting with a model tl saved: the top labels, with scores, of any images.

The model folder says everything: which framework saved it (``tl_run.json``, or
``quantization.json`` for the quantized model), the labels (``labels.json``) and
how pixels become input (``preprocessing.json``). Images are decoded exactly as in
training (EXIF rotation, CMYK, bad images named and skipped with a warning), and
the framework's own hooks load the model (``tl_load_model``) and score the images
(``tl_predict``), so this works for every framework, float or quantized.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from tlcore.calls import Hooks
from tlcore.dataset import Split
from tlcore.errors import ConfigError, DatasetError, ModelError, PluginError
from tlcore.images import IMAGE_SUFFIXES
from tlcore.loader import ImageBatches, run_batches
from tlcore.pluginmanager import make_plugin_manager
from tlcore.preprocessing import Preprocessing
from tlcore.registry import registered_frameworks
from tlcore.report import Reporter

if TYPE_CHECKING:
    from tlcore.pluginmanager import PluginManager

FLOAT_FOLDER = "saved_model"
QUANTIZED_FOLDER = "imx500"
FLOAT_RECORD = "tl_run.json"
QUANTIZED_RECORD = "quantization.json"
MAX_BATCH = 32
"""Images per tl_predict call: the run's batch_size, at most this (memory stays small, speed is the same)."""
WHAT_TO_GIVE = (f"give output_dir/{FLOAT_FOLDER} (the folder tl run wrote), its output_dir, "
                f"or output_dir/{QUANTIZED_FOLDER} (the quantized model)")


@dataclass(frozen=True)
class Prediction:
    """The best labels of one image, best first: ``predictions`` are ``(label, score)`` pairs."""

    path: str
    predictions: tuple[tuple[str, float], ...]

    @property
    def label(self) -> str:
        """The best label."""
        return self.predictions[0][0]

    @property
    def score(self) -> float:
        """The best label's score."""
        return self.predictions[0][1]

    def to_dict(self) -> dict[str, Any]:
        """``{"path": ..., "predictions": [{"label": ..., "score": ...}, ...]}``, as ``tl predict --json``."""
        return {"path": self.path, "predictions": [{"label": label, "score": score}
                                                   for label, score in self.predictions]}


@dataclass(frozen=True)
class SavedModel:
    """A model folder tl wrote: ``saved_model`` (float) or ``imx500`` (quantized), with its record."""

    folder: Path
    framework: str
    quantized: bool
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def record_file(self) -> Path:
        return self.folder / (QUANTIZED_RECORD if self.quantized else FLOAT_RECORD)

    @property
    def kind(self) -> str:
        return "quantized" if self.quantized else "float"

    def labels(self) -> dict[int, str]:
        """Label id -> class name, from ``labels.json`` (ids no class has are absent)."""
        data = self._json("labels.json")
        names: dict[int, str] = {}
        for name, label in data.items():
            if isinstance(label, bool) or not isinstance(label, int) or label < 0 or label in names:
                raise ModelError(f'{self.folder / "labels.json"}: the id of "{name}" is {json.dumps(label)}; ids '
                                 "are unique integers of 0 or more; restore the file tl wrote, or run tl run again")
            names[label] = name
        if not names:
            raise ModelError(f'{self.folder / "labels.json"} lists no classes; restore the file tl wrote, '
                             "or run tl run again")
        return names

    def preprocessing(self) -> Preprocessing:
        """How pixels become this model's input, from ``preprocessing.json`` (raw pixels for a quantized model)."""
        data = self._json("preprocessing.json")
        try:
            return Preprocessing.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f'{self.folder / "preprocessing.json"} is not what tl wrote ({type(exc).__name__}: '
                             f"{exc}); restore it, or run tl run again") from None

    def batch_size(self) -> int:
        configured = self.record.get("configuration", {})
        size = configured.get("batch_size") if isinstance(configured, Mapping) else None
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            return MAX_BATCH
        return min(size, MAX_BATCH)

    def _json(self, name: str) -> dict[str, Any]:
        return _read_object(self.folder / name, f"{self.folder} has no {name}, which tl writes beside every model; "
                                                f"was the folder changed? Run tl run (or tl quantize) again")


def _read_object(path: Path, missing: str) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(missing)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"cannot read {path} ({type(exc).__name__}: {exc}); restore the file tl wrote, "
                         "or run tl run (or tl quantize) again") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object; restore the file tl wrote, or run tl run again")
    return data


def _saved(folder: Path, quantized: bool) -> SavedModel:
    record_file = folder / (QUANTIZED_RECORD if quantized else FLOAT_RECORD)
    record = _read_object(record_file, f"{folder} has no {record_file.name}; {WHAT_TO_GIVE}")
    framework = record.get("framework")
    if not isinstance(framework, str) or not framework:
        raise ModelError(f'{record_file} does not say which framework saved the model ("framework"); '
                         "run tl run (or tl quantize) again")
    return SavedModel(folder, framework, quantized, record)


def find_model(path: str | Path, quantized: bool = False) -> SavedModel:
    """The model in ``path``: a ``saved_model`` or ``imx500`` folder, or the ``output_dir`` holding them
    (its float model when it has one, else its quantized one; with ``quantized``, its quantized one).

    :raises ConfigError: (exit code 2) when ``path`` holds no model tl saved, saying what to give.
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise ConfigError(f"model folder not found: {path}; {WHAT_TO_GIVE}")
    if not path.is_dir():
        raise ConfigError(f"{path} is a file, not a model folder; {WHAT_TO_GIVE}")
    if (path / FLOAT_RECORD).is_file():
        if quantized:
            raise ConfigError(f"{path} holds the float model and --quantized asks for the quantized one; give "
                              f"{path.parent / QUANTIZED_FOLDER} (tl quantize makes it), or leave out --quantized")
        return _saved(path, False)
    if (path / QUANTIZED_RECORD).is_file():
        return _saved(path, True)
    float_dir, quantized_dir = path / FLOAT_FOLDER, path / QUANTIZED_FOLDER
    has_float, has_quantized = (float_dir / FLOAT_RECORD).is_file(), (quantized_dir / QUANTIZED_RECORD).is_file()
    if quantized:
        if has_quantized:
            return _saved(quantized_dir, True)
        if has_float:
            raise ConfigError(f"no quantized model in {path} (no {QUANTIZED_FOLDER}/ with {QUANTIZED_RECORD}); make "
                              "it with `tl quantize CONFIGURATION.json`, or leave out --quantized")
    elif has_float:
        return _saved(float_dir, False)
    elif has_quantized:
        return _saved(quantized_dir, True)
    raise ConfigError(f"no model tl saved in {path}; {WHAT_TO_GIVE}")


def image_files(arguments: Iterable[str | Path] | str | Path, reporter: Reporter | None = None) -> list[Path]:
    """The image files named, and the images in the folders named (recursively, by suffix, hidden files and
    folders left out, symbolic links to folders not followed), in the order given, each folder sorted."""
    given = [arguments] if isinstance(arguments, (str, Path)) else list(arguments)
    if not given:
        raise ConfigError("no images given; give image files or folders of images")
    files: list[Path] = []
    for argument in given:
        path = Path(argument).expanduser()
        if path.is_dir():
            files += _folder_images(path, reporter)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"not found: {path}; give image files or folders of images")
    if not files:
        shown = ", ".join(str(argument) for argument in given[:3]) + (" ..." if len(given) > 3 else "")
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {shown}; give image files or folders "
                           "of images")
    return files


def _folder_images(folder: Path, reporter: Reporter | None) -> list[Path]:
    found: list[tuple[tuple[str, ...], Path]] = []
    others: list[str] = []
    linked: list[str] = []
    for root, dirs, names in os.walk(folder):
        linked += [os.path.join(root, d) for d in dirs if not d.startswith(".") and os.path.islink(os.path.join(root, d))]
        dirs[:] = [d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d))]
        for name in names:
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found.append((path.relative_to(folder).parts, path))
            else:
                others.append(str(path))
    if reporter is not None and others:
        reporter.warning(f"{folder}: ignoring {len(others)} file(s) that are not images by name: "
                         f"{_listing(sorted(others))} (images are {', '.join(IMAGE_SUFFIXES)})")
    if reporter is not None and linked:
        reporter.warning(f"{folder}: not following {len(linked)} symbolic link(s) to folders: {_listing(sorted(linked))}")
    return [path for _, path in sorted(found)]


def _listing(items: list[str], shown: int = 3) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def predict(model_dir: str | Path | SavedModel, images: Iterable[str | Path] | str | Path, top_k: int = 5, *,
            quantized: bool = False, manager: PluginManager | None = None, reporter: Reporter | None = None,
            debug: bool = False) -> list[Prediction]:
    """The ``top_k`` labels, with scores, of every image (files, or folders searched recursively), in the order
    given; an image that cannot be decoded is named in a warning and left out.

    :param model_dir: a ``saved_model`` folder, ``output_dir/imx500``, or the ``output_dir`` holding them.
    :param images: image files and folders.
    :param top_k: how many labels per image (all the classes when there are fewer).
    :param quantized: with an ``output_dir``, use its quantized model.
    :param manager: the plugins (default: the built-ins and the installed ones).
    :param reporter: where progress, the model line and warnings go (default: stderr, so that stdout stays
        clean for the results).
    :returns: one :class:`Prediction` per decoded image, best label first.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k is {top_k!r}; ask for 1 or more labels")
    saved = model_dir if isinstance(model_dir, SavedModel) else find_model(model_dir, quantized)
    reporter = reporter or Reporter(stream=sys.stderr, debug=debug)
    files = image_files(images, reporter)
    names = saved.labels()
    preprocessing = saved.preprocessing()
    manager = manager or make_plugin_manager()
    frameworks = registered_frameworks(manager)
    if saved.framework not in frameworks:
        available = ", ".join(sorted(frameworks)) or "none"
        raise ConfigError(f'{saved.record_file}: the model was saved by framework "{saved.framework}", which is not '
                          f"available (available: {available}); install its plugin, or load it with -p MODULE")
    framework = frameworks[saved.framework][0]
    framework.check_installed()
    framework.quieten(quiet=not (debug or reporter.debug))
    hooks = Hooks(manager, framework)
    hooks.require(["tl_load_model", "tl_predict"])
    reporter.info(f"Model: {saved.folder} ({saved.kind}, framework {framework.name}, {len(names)} classes); "
                  f"{len(files)} image(s)")
    framework.start(reporter)
    model, _ = hooks.answer("tl_load_model", path=saved.folder, reporter=reporter, purpose="predict")
    outputs = max(names) + 1
    import numpy as np

    labelled = np.array(sorted(names), dtype=np.int64)  # the outputs that are classes (ids may have gaps)
    split = Split("images", Path.cwd(), tuple((path, 0) for path in files))
    results: dict[int, Prediction] = {}

    def score(batch: Any) -> None:
        scores, plugin = hooks.answer("tl_predict", model=model, images=batch.images)
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[0] != len(batch) or scores.shape[1] < outputs:
            raise PluginError(f'plugin "{plugin}" returned scores of shape {scores.shape} from tl_predict for '
                              f"{len(batch)} images; expected ({len(batch)}, {outputs}): one score per label id "
                              "(is labels.json the one saved with the model?)")
        best = top_labels(scores, labelled, top_k)
        for index, row, labels in zip(batch.indices, scores, best, strict=True):
            results[int(index)] = Prediction(str(files[int(index)]),
                                             tuple((names[label], float(row[label])) for label in labels.tolist()))

    run_batches(ImageBatches(split, preprocessing, saved.batch_size()), score, reporter, label="predicting ",
                delay=1.0)
    if not results:
        raise DatasetError(f"none of the {len(files)} image(s) could be decoded (see the warning above); give "
                           "images that open in an image viewer")
    return [results[index] for index in sorted(results)]


def top_labels(scores: Any, labelled: Any, k: int) -> Any:
    """For each row of ``scores`` (images x outputs), the ``k`` best of the outputs ``labelled`` (sorted ids),
    best first, ties to the lower id: one partial sort of the whole batch, not a sort per image (1000 classes)."""
    import numpy as np

    candidates = scores[:, labelled]
    k = min(k, len(labelled))
    if k < len(labelled):
        picked = np.argpartition(-candidates, k - 1, axis=1)[:, :k]
    else:
        picked = np.broadcast_to(np.arange(len(labelled)), candidates.shape)
    values = np.take_along_axis(candidates, picked, axis=1)
    order = np.lexsort((picked, -values), axis=1)
    return labelled[np.take_along_axis(picked, order, axis=1)]
