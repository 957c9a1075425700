""":func:`fit`: the training policy, the same for every framework, driving a framework's :class:`Trainable`."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterator

from tlcore.features import SPLITS, FeatureSet
from tlcore.head_search import MAX_EPOCHS, SearchResult, Settings, search_enabled, search_head
from tlcore.health import check_dataset
from tlcore.loader import ImageBatches, report_undecodable, run_batches
from tlcore.sampling import run_seed
from tlcore.training.checkpoint import load_steps_state, steps_state
from tlcore.training.contract import Steps, Trainable, spread
from tlcore.training.data import CachedData, StreamedData, class_weights, holdout_indices, training_data, watched_images
from tlcore.training.loop import TrainingLoop, announce_training, run_epochs
from tlcore.training.schedule import LearningRate, phases, total_epochs

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.distributed import Cluster
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter
    from tlcore.training.events import RunEvents


def _head_options(config: RunConfig) -> dict[str, float]:
    """The head's regularisation for :meth:`Trainable.steps`, given only when set: a framework that does not
    honour ``label_smoothing`` or ``weight_decay`` (its :attr:`Framework.keys`) never gets them."""
    return {key: value for key in ("label_smoothing", "weight_decay") if (value := getattr(config, key))}


def _search(data: CachedData | StreamedData, dataset: DatasetIndex, config: RunConfig, seed: int, weights: Any,
            reporter: Reporter, events: RunEvents) -> dict[str, Any]:
    """The head search on the cached training features (the chief's, sent to every worker): the settings
    chosen; its result is kept in ``events.head_search``."""
    assert isinstance(data, CachedData)
    cluster = events.cluster
    found = search_head(data.sets["training"], dataset.num_outputs, config, seed, weights, reporter) \
        if cluster.chief else None
    record = cluster.broadcast(found.to_dict() if found is not None else None)
    events.head_search = found if found is not None else SearchResult.from_dict(record)
    return dict(events.head_search.chosen)


def _check_data(data: CachedData | StreamedData, dataset: DatasetIndex, config: RunConfig, seed: int, weights: Any,
                reporter: Reporter) -> Any:
    """The data check (:mod:`tlcore.health`) on the cached features, with out-of-fold heads trained as the head will
    be; without cached features (fine-tuning, augmentation every epoch), of identical files and classes only."""
    import numpy as np

    options = config.options  # the base model's keys, declared by the framework's plugins
    random_base = "weights" in options and options["weights"] is None \
        and not any(options.get(key) for key in ("source_keras_model", "source_torch_model"))
    if isinstance(data, CachedData):
        sets = data.sets
        if random_base:  # random projections: unrelated images come out alike
            reporter.info("Data check: the base has random weights, so near-duplicates are not looked for (identical "
                          "files are)")
    else:
        reporter.info("Data check: features are not computed once in this run, so it looks for identical files and "
                      "checks the classes only (tl check looks for near-duplicates and wrong labels too)")
        sets = {}
        for name in SPLITS:
            split = getattr(dataset, name)
            sets[name] = FeatureSet(np.zeros((len(split), 1), np.float32), np.asarray(split.label_ids, np.int64),
                                    np.zeros(0, np.int64))
    settings = Settings(config.learning_rate, config.weight_decay, config.label_smoothing)
    return check_dataset(sets, dataset, settings, epochs=min(config.epochs, MAX_EPOCHS), batch_size=config.batch_size,
                         dropout=config.dropout, seed=seed, class_weights=weights, reporter=reporter,
                         near_duplicates=not random_base)


def scored_by_workers(trainable: Trainable, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
                      reporter: Reporter, cluster: Cluster, report: bool) -> tuple[Any, Any]:
    """The trained classifier's scores of the validation images, ``(rows, scores)`` in row order, each worker
    scoring its share (:meth:`Cluster.share`) and the shares gathered: the evaluation of a streamed run with
    several workers. Rows of images that do not decode are left out; with ``report`` (the epochs did not go
    through the validation images), the chief names them."""
    import numpy as np

    batches = ImageBatches(dataset.validation, preprocessing, config.batch_size,
                           order=cluster.share(range(len(dataset.validation))), bad_images=config.bad_images)
    rows, scores = [], []

    def score(batch: Any) -> None:
        rows.append(np.asarray(batch.indices))
        scores.append(trainable.head_scores(trainable.features(batch.images)))

    run_batches(batches, score, reporter, label=f"evaluating (this worker's share, of {cluster.size}) ", report=False)
    shares = cluster.gather((np.concatenate(rows) if rows else np.zeros(0, np.int64),
                             np.concatenate(scores) if scores else np.zeros((0, dataset.num_outputs), np.float32),
                             sorted(batches.undecodable)))
    if cluster.chief and report:
        report_undecodable(dataset.validation, sorted(entry for *_, skipped in shares for entry in skipped), reporter)
    every_row = np.concatenate([share_rows for share_rows, *_ in shares])
    order = np.argsort(every_row, kind="stable")
    every_score = np.concatenate([share_scores for _, share_scores, _ in shares])[order]
    return every_row[order], every_score if len(order) else None


def fit(trainable: Trainable, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig,
        reporter: Reporter, events: RunEvents) -> None:
    """Train ``trainable``'s head (and fine-tune its base) as the configuration says; with a checkpoint
    (``events.checkpoint``), save the state after every epoch, and continue from a resumed one."""
    checkpoint = events.checkpoint
    cluster = events.cluster
    resumed = cluster.broadcast(checkpoint.resumed if checkpoint is not None else None)  # the chief's
    seed = resumed["seed"] if resumed is not None else cluster.broadcast(run_seed(config))
    weights = class_weights(config, dataset)
    holdout = None
    if watched_images(config) == "hold-out":
        holdout = holdout_indices(dataset.training, config.holdout_fraction, seed)
        reporter.info(f"Early stopping watches a hold-out of {len(holdout)} training images: val_loss and val_acc "
                      "below are measured on it, not on the validation images")
    elif config.early_stopping_patience:
        reporter.warning("early stopping watches the validation images, so their Top-1 accuracy is optimistic; "
                         '"early_stopping_monitor": "holdout" keeps them for measuring only')
    if events.check_only:  # the features of the images themselves, for the search and the check alone
        config = replace(config, augmentation=(), augmentation_views=0, fine_tune_layers=0, fine_tune_epochs=0,
                         feature_cache="auto" if config.feature_cache == "off" else config.feature_cache)
    first = 1
    chosen = resumed.get("search") if resumed is not None else None
    if chosen:  # the interrupted run's head search chose these: the resumed run trains with them
        config = replace(config, **chosen)
        events.settle(config)
    for index in range(len(phases(config))):
        phase = phases(config)[index]
        if resumed is not None and index < resumed["phase"]:
            continue  # finished before the interruption: the resumed state holds what it trained
        if resumed is not None and index == resumed["phase"]:
            first = resumed["first"]
        trainable.freeze(phase.layers)
        data = training_data(dataset, preprocessing, config, reporter, seed, compute=trainable.features,
                             dim=trainable.dim, model_key=trainable.model_key, frozen=phase.layers == 0,
                             holdout=holdout, cluster=cluster)
        if index == 0 and chosen is None and search_enabled(config, data.cached and phase.layers == 0):
            chosen = _search(data, dataset, config, seed, weights, reporter, events)
            config = replace(config, **chosen)
            events.settle(config)
            phase = phases(config)[index]
        elif index == 0 and config.head_search is True and not data.cached:
            reporter.warning('"head_search" needs a frozen base whose features are computed once (no fine_tune_layers '
                             'without fine_tune_epochs, no augmentation with "augmentation_views": 0); the configured '
                             "values train the head")
        if index == 0 and config.data_check and cluster.chief and (resumed is None or events.check_only):
            events.health = _check_data(data, dataset, config, seed, weights, reporter)
        if events.check_only:
            return
        steps = trainable.steps(data.cached, phase.learning_rate, weights, **_head_options(config))
        parted = isinstance(data, StreamedData)  # images: each worker decodes its part of a batch
        train_step, test_step = (steps.train, steps.test) if cluster.size == 1 else \
            (spread(cluster, steps.train, parted), spread(cluster, steps.test, parted))
        announce_training(reporter, config, dataset.num_outputs, trainable.name, trainable.layers, data.cached,
                          tuned=phase.layers, epochs=phase.epochs, views=data.views - 1)
        last = first + phase.epochs - 1
        start, first_step = first, 0
        best = None
        if resumed is not None and index == resumed["phase"]:
            load_steps_state(steps, resumed["steps"])
            events.history[:] = resumed["history"]
            start, first_step, best = resumed["epoch"] + 1, resumed["step"], resumed["best"]
            resumed = None
        notes = [phase.note] if len(phases(config)) > 1 else []
        if holdout is not None:
            notes.append(f"val_* on the hold-out of {len(holdout)} training images")
        loop = TrainingLoop(reporter, events, total_epochs(config), data.num_train, data.num_validation,
                            first=start, last=last, note="; ".join(notes), patience=config.early_stopping_patience,
                            snapshot=steps.snapshot, restore=steps.restore,
                            watched=watched_images(config))
        loop.epoch, loop.best = start - 1, best
        per_epoch = math.ceil(data.num_train / config.batch_size)
        rate = LearningRate(phase.learning_rate, config.learning_rate_schedule, config.warmup_epochs, phase.epochs,
                            per_epoch)

        def save(epoch: int, step: int, index: int = index, first: int = first, loop: TrainingLoop = loop,
                 steps: Steps = steps) -> None:
            if checkpoint is None and cluster.size == 1:
                return
            state = steps_state(steps)  # on every worker: reading the weights may take all of them (the engine's sync)
            if checkpoint is not None:
                checkpoint.save({"seed": seed, "phase": index, "first": first, "epoch": epoch, "step": step,
                                 "epochs": total_epochs(config), "history": list(events.history), "best": loop.best,
                                 "steps": state, "search": chosen})

        def batches(epoch: int, data: StreamedData | CachedData = data) -> Iterator[Any]:
            return data.training(epoch, keys=True)  # each image's key: steps draw its dropout from it

        began = time.monotonic()
        run_epochs(loop, batches, data.validation, train_step, test_step, rate, steps.set_learning_rate,
                   first_step=first_step, after_epoch=save)
        if index == 0 and events.head_search is not None:  # what the search cost is measured against
            events.head_search.training_seconds = time.monotonic() - began
        first = loop.epoch + 1
    if isinstance(data, CachedData):  # the final classifier is the frozen base + this head: score what is cached
        validation = data.sets["validation"]
        scores = [trainable.head_scores(features) for features, _ in validation.batches(max(config.batch_size, 256))]
        import numpy as np

        events.validation_scores = (np.sort(validation.rows), np.concatenate(scores) if scores else None)
    elif cluster.size > 1:  # streamed: the evaluation is spread too, each worker scoring its share
        events.validation_scores = scored_by_workers(trainable, dataset, preprocessing, config, reporter, cluster,
                                                     report=holdout is not None)
    if events.early_stopping is not None:
        events.early_stopping.update(monitor=config.early_stopping_monitor,
                                     holdout_images=len(holdout) if holdout is not None else 0)
