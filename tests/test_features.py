"""The core's feature cache, driven by a numpy "extractor": computed once, in memory or on disk, reused only
while the model, the preprocessing and the image files are unchanged. The same for every framework."""

import io
import os

import numpy as np
import pytest

from tlplugins.datasets.imagenet_folder import tl_load_dataset
from tlcore.config import load_config
from tlcore.features import CACHE_FOLDER, cached_features
from tlcore.preprocessing import PRESETS, Preprocessing
from tlcore.report import Reporter


def mean_colour(images):
    return images.mean(axis=(1, 2))


@pytest.fixture
def setting(project):
    config = load_config(project.write(feature_cache="disk"))
    config.output_dir.mkdir()
    quiet = Reporter(stream=io.StringIO(), err=io.StringIO())
    return config, tl_load_dataset(config=config, reporter=quiet)


def features(config, dataset, key="model-1", preprocessing=None):
    mean, std = PRESETS["unit"]
    preprocessing = preprocessing or Preprocessing("unit", 32, mean, std)
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    calls = []

    def compute(images):
        calls.append(len(images))
        return mean_colour(images)

    sets = cached_features(compute, 3, lambda: key, dataset, preprocessing, config, reporter)
    folders = sorted(p.name for p in (config.output_dir / CACHE_FOLDER).glob("features-*"))
    return sets, folders, reporter.stream.getvalue(), sum(calls)


def test_disk_cache_is_reused_only_while_model_preprocessing_and_files_are_unchanged(setting):
    config, dataset = setting
    sets, [first], said, computed = features(config, dataset)
    assert "Computing features once per image into" in said and computed == 18
    assert "features of training images 12/12" in said
    assert sets["training"].features.shape == (12, 3) and list(sets["training"].labels) == [0] * 4 + [1] * 4 + [2] * 4
    reused, folders, said, computed = features(config, dataset)
    assert "reusing the cache" in said and folders == [first] and computed == 0
    assert np.array_equal(reused["validation"].features, sets["validation"].features)

    os.utime(dataset.training.samples[0][0], ns=(0, 0))
    _, [second], said, _ = features(config, dataset)
    assert "reusing" not in said and second != first, "a changed image file refreshes the cache"

    image, other_image = dataset.training.samples[0][0], dataset.training.samples[4][0]
    before = os.stat(image)
    replacement = image.with_name("replacement")  # another picture of the same size, put in place as `cp -p` does
    replacement.write_bytes(other_image.read_bytes()[:before.st_size].ljust(before.st_size, b"\0"))
    os.replace(replacement, image)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(image).st_size, os.stat(image).st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    _, folders, said, _ = features(config, dataset)
    assert "reusing" not in said and second not in folders, "same size and time, another file: not reused"

    other = Preprocessing("mobilenet_v2", 32, *PRESETS["mobilenet_v2"])
    _, [third], said, _ = features(config, dataset, preprocessing=other)
    assert "reusing" not in said and third != second, "other preprocessing, other features"

    _, [fourth], said, _ = features(config, dataset, key="model-2")
    assert "reusing" not in said and fourth not in (second, third), "another model, other features"


def test_features_stay_in_memory_when_small_and_batches_read_rows_in_any_order(setting):
    import dataclasses

    config, dataset = setting
    config = dataclasses.replace(config, feature_cache="auto")
    sets, folders, said, _ = features(config, dataset)
    assert folders == [] and "MiB in memory" in said
    training = sets["training"]
    order = np.array([5, 0, 11, 3])
    batches = list(training.batches(2, order))
    assert [sorted(labels.tolist()) for _, labels in batches] == [[0, 1], [0, 2]]
    assert np.allclose(np.concatenate([f for f, _ in batches]).sum(0), training.features[[0, 3, 5, 11]].sum(0))


class ThreadWorkers:
    """Collectives of workers that are threads of this process, meeting at a barrier."""

    def __init__(self, size):
        import threading

        self.slots, self.barrier = [None] * size, threading.Barrier(size, timeout=30)

    def of(self, rank):
        collectives = self

        class Worker:
            def all_gather(self, value):
                collectives.slots[rank] = value
                collectives.barrier.wait()
                gathered = list(collectives.slots)
                collectives.barrier.wait()
                return gathered

            def broadcast(self, value):
                return self.all_gather(value)[0]

            def sum(self, values):
                return [sum(column) for column in zip(*self.all_gather(values), strict=True)]

            def close(self):
                pass

        return Worker()


@pytest.mark.parametrize("cache", ["auto", "disk"])
def test_two_workers_gather_the_features_of_one_in_memory_or_in_a_temporary_file(setting, cache, monkeypatch,
                                                                                   tmp_path):
    import dataclasses
    import threading

    import tlcore.features
    from tlcore.distributed import Cluster

    config, dataset = setting
    config = dataclasses.replace(config, feature_cache=cache)
    alone, _, _, _ = features(dataclasses.replace(config, feature_cache="memory"), dataset)
    monkeypatch.setattr(tlcore.features, "GATHER_BYTES", 2 * 3 * 4)  # 2 rows at a time: several gathers
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr("tempfile.tempdir", None)
    workers, results, said = ThreadWorkers(2), [None, None], [None, None]

    def work(rank):
        reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
        cluster = Cluster(rank, 2, "threads", "here", workers.of(rank))
        results[rank] = cached_features(mean_colour, 3, lambda: "model", dataset,
                                        Preprocessing("unit", 32, *PRESETS["unit"]), config, reporter, cluster)
        said[rank] = reporter.stream.getvalue()

    threads = [threading.Thread(target=work, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for sets in results:
        for name in ("training", "validation"):
            assert np.allclose(sets[name].features, alone[name].features), "every worker has every image's features"
    assert ("in a temporary file" in said[0]) == (cache == "disk") and ("in memory" in said[0]) == (cache == "auto")
    assert "features of training images 6/6" in said[0], "each worker computed its half"
    assert isinstance(results[1]["training"].features, np.memmap) == (cache == "disk")
    assert list(temporary.iterdir()) == [], "the temporary files are gone already"
    assert not (config.output_dir / CACHE_FOLDER).exists() or not any((config.output_dir / CACHE_FOLDER).iterdir())
