"""Evaluation over predictions: the framework predicts, metric plugins measure.

The core streams the validation images through the selected framework's
``tl_predict`` and hands the resulting :class:`Predictions` (scores, label ids,
file paths) to every ``tl_evaluate`` plugin. No metric plugin ever sees a
framework model, so every metric works with every framework, float or quantized.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from tlcore.errors import DatasetError, PluginError
from tlcore.loader import Batch, ImageBatches, run_batches

if TYPE_CHECKING:
    import numpy as np

    from tlcore.calls import Hooks
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex, Split
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter


@dataclass(frozen=True)
class Predictions:
    """A model's scores for the images of a split.

    ``scores`` has one row per image and one column per output index (label id);
    ``label_ids`` are the true ids and ``paths`` the image files, in the same order.
    ``class_names`` are indexed by output index (None where no class has that id);
    ``model`` says which model predicted when it is not the only one (``"quantized model"``).
    """

    scores: np.ndarray
    label_ids: np.ndarray
    paths: tuple[str, ...]
    class_names: tuple[str | None, ...]
    split: str = "validation"
    model: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def predicted(self) -> np.ndarray:
        """The best-scoring label id of each image."""
        return self.scores.argmax(axis=1)

    def top_k(self, k: int) -> np.ndarray:
        """The ``k`` best-scoring label ids of each image, best first (n x k)."""
        import numpy as np

        k = min(k, self.scores.shape[1])
        best = np.argpartition(-self.scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(-self.scores, best, axis=1).argsort(axis=1, kind="stable")
        return np.take_along_axis(best, order, axis=1)


def predict_split(predict: Callable[[np.ndarray], tuple[Any, str]], split: Split, preprocessing: Preprocessing,
                  dataset: DatasetIndex, config: RunConfig, reporter: Reporter, label: str = "predicting ",
                  model: str = "") -> Predictions:
    """Stream ``split`` through ``predict`` and collect :class:`Predictions`.

    :param predict: model input batch -> ``(scores, name of the plugin that scored)``.
    """
    import numpy as np

    outputs = dataset.num_outputs
    scores = np.zeros((len(split), outputs), dtype=np.float32)
    seen = np.zeros(len(split), dtype=bool)

    def store(batch: Batch) -> None:
        result, plugin = predict(batch.images)
        result = np.asarray(result)
        if result.shape != (len(batch), outputs):
            raise PluginError(
                f'plugin "{plugin}" returned scores of shape {result.shape} from tl_predict for {len(batch)} images; '
                f"expected ({len(batch)}, {outputs}): one score per output index"
            )
        scores[batch.indices] = result
        seen[batch.indices] = True

    batches = ImageBatches(split, preprocessing, config.batch_size, bad_images=config.bad_images)
    run_batches(batches, store, reporter, label=label)
    return scored(scores[seen], np.flatnonzero(seen), split, dataset, model)


def scored(scores: np.ndarray, rows: np.ndarray, split: Split, dataset: DatasetIndex, model: str = "") -> Predictions:
    """:class:`Predictions` of the images of ``split`` at ``rows`` (the ones that decoded), scored ``scores``."""
    import numpy as np

    if not len(rows):
        raise DatasetError(f"no {split.name} image could be decoded in {split.root}; check the images")
    samples = [split.samples[int(row)] for row in rows]
    return Predictions(
        scores=np.asarray(scores, dtype=np.float32),
        label_ids=np.asarray([label_id for _, label_id in samples], dtype=np.int64),
        paths=tuple(str(path) for path, _ in samples),
        class_names=tuple(dataset.class_names),
        split=split.name,
        model=model,
    )


def evaluate_model(hooks: Hooks, model: Any, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
                   reporter: Reporter, *, label: str = "evaluating ", name: str = "",
                   answered: dict[str, str] | None = None) -> tuple[dict[str, Any], Predictions]:
    """Predict the validation images with ``model`` (the framework's ``tl_predict``) and measure the
    predictions with every metric plugin: ``(metrics, predictions)``. ``answered`` (if given) records
    which plugin predicted."""
    def predict(images: Any) -> tuple[Any, str]:
        scores, plugin = hooks.answer("tl_predict", model=model, images=images)
        if answered is not None:
            answered["tl_predict"] = plugin
        return scores, plugin

    predictions = predict_split(predict, dataset.validation, preprocessing, dataset, config, reporter, label=label,
                                model=name)
    return evaluate(hooks, predictions, dataset, config, reporter), predictions


def evaluate(hooks: Hooks, predictions: Predictions, dataset: DatasetIndex, config: RunConfig,
             reporter: Reporter) -> dict[str, Any]:
    """Merge every metric plugin's dict; a metric reported twice is an error."""
    metrics: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for plugin, result in hooks.all("tl_evaluate", predictions=predictions, dataset=dataset, config=config,
                                    reporter=reporter):
        if not isinstance(result, dict):
            raise PluginError(f'plugin "{plugin}" returned {type(result).__name__} from tl_evaluate; it must return a dict')
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise PluginError(f'plugin "{plugin}" returned metrics that are not JSON-serialisable: {exc}') from None
        for name, value in result.items():
            if name in metrics:
                raise PluginError(f'metric "{name}" is reported by both "{owner[name]}" and "{plugin}"; block one of them')
            metrics[name], owner[name] = value, plugin
    if not metrics:
        raise PluginError("no plugin answered tl_evaluate; is the built-in evaluator blocked?")
    return metrics
