"""Predicting with a model tl saved: the top labels, with scores, of any images.

The model folder says everything: which framework saved it (``tl_run.json``, or
``quantization.json`` for the quantized model), the labels (``labels.json``) and
how pixels become input (``preprocessing.json``). Images are decoded as in
training (EXIF rotation, CMYK, bad images named and skipped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from tlcore.errors import ConfigError, DatasetError, ModelError

if TYPE_CHECKING:
    from tlcore.pluginmanager import PluginManager
    from tlcore.report import Reporter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class Prediction:
    """The best labels of one image, best first: ``(label, score)`` pairs."""

    path: str
    predictions: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "predictions": [{"label": label, "score": score}
                                                   for label, score in self.predictions]}


@dataclass(frozen=True)
class SavedModel:
    """A model folder tl wrote: ``saved_model`` (float) or ``imx500`` (quantized), with its record."""

    folder: Path
    framework: str
    quantized: bool
    record: dict[str, Any]


def find_model(path: str | Path, quantized: bool = False) -> SavedModel:
    """The model in ``path``: a ``saved_model`` or ``imx500`` folder, or the ``output_dir`` holding them
    (its float model, or with ``quantized`` its quantized one)."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise ConfigError(f"model folder not found: {path}; give the saved_model folder that tl run wrote "
                          "(or its output_dir)")
    candidates = [path] if (path / "tl_run.json").is_file() or (path / "quantization.json").is_file() else []
    if not candidates:
        candidates = [path / ("imx500" if quantized else "saved_model")]
    folder = candidates[0]
    for record_name, is_quantized in (("quantization.json", True), ("tl_run.json", False)):
        record_file = folder / record_name
        if record_file.is_file():
            if quantized and not is_quantized:
                raise ConfigError(f"{folder} holds the float model; give the imx500 folder (or its output_dir) "
                                  "for the quantized one")
            try:
                record = json.loads(record_file.read_text())
                return SavedModel(folder, str(record["framework"]), is_quantized, record)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"cannot read {record_file} ({exc}); save the model again with tl") from None
    what = "quantized model (run `tl quantize` first)" if quantized else "model"
    raise ConfigError(f"no {what} tl saved in {path}; give the saved_model folder that tl run wrote, its output_dir, "
                      "or output_dir/imx500")


def image_files(arguments: Iterable[str | Path]) -> list[Path]:
    """The image files named, and those in the folders named (recursively), in the order given."""
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"not found: {path}; give image files or folders of images")
    if not files:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(str(a) for a in arguments)}")
    return files


def predict(model_dir: str | Path, images: Sequence[str | Path] | str | Path, top_k: int = 5, *,
            quantized: bool = False, manager: PluginManager | None = None, reporter: Reporter | None = None,
            debug: bool = False) -> list[Prediction]:
    """The ``top_k`` labels, with scores, of every image (files or folders), in the order given.

    :param model_dir: a ``saved_model`` folder, ``output_dir/imx500``, or the ``output_dir`` holding them.
    :param quantized: with an ``output_dir``, use its quantized model.
    :param manager: the plugins (default: the built-ins and the installed ones).
    :param reporter: where progress and warnings go (default: the terminal, progress on stderr).
    """
    import numpy as np

    from tlcore.calls import Hooks
    from tlcore.dataset import Split
    from tlcore.frameworks import registered_frameworks, select_framework
    from tlcore.loader import ImageBatches, run_batches
    from tlcore.pluginmanager import make_plugin_manager
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter

    if top_k < 1:
        raise ConfigError(f"top_k is {top_k}; ask for 1 or more labels")
    if isinstance(images, (str, Path)):
        images = [images]
    saved = find_model(model_dir, quantized)
    files = image_files(images)
    reporter = reporter or Reporter(stream=__import__("sys").stderr, debug=debug)
    manager = manager or make_plugin_manager()
    framework = select_framework(registered_frameworks(manager), saved.framework, saved.folder.name)
    framework.check_installed()
    if not reporter.debug:
        framework.quieten()
    hooks = Hooks(manager, framework)
    hooks.require(["tl_load_model", "tl_predict"])
    labels = json.loads((saved.folder / "labels.json").read_text())
    names = {int(label): name for name, label in labels.items()}
    preprocessing = Preprocessing.from_dict(json.loads((saved.folder / "preprocessing.json").read_text()))
    model, _ = hooks.answer("tl_load_model", path=saved.folder, reporter=reporter)
    batch_size = int(saved.record.get("configuration", {}).get("batch_size", 32) or 32)
    split = Split("images", Path.cwd(), tuple((path, 0) for path in files))
    results: dict[int, Prediction] = {}

    def score(batch: Any) -> None:
        scores, plugin = hooks.answer("tl_predict", model=model, images=batch.images)
        scores = np.asarray(scores)
        for index, row in zip(batch.indices, scores, strict=True):
            best = [label for label in np.argsort(-row, kind="stable") if int(label) in names][:top_k]
            results[int(index)] = Prediction(str(files[int(index)]),
                                             tuple((names[int(label)], float(row[label])) for label in best))

    run_batches(ImageBatches(split, preprocessing, batch_size), score, reporter, label="predicting ", delay=1.0)
    return [results[index] for index in sorted(results)]
