"""The core's training policy, driven by the fake framework: early stopping on a hold-out, the best weights
restored, learning-rate schedules, class weights."""

import dataclasses
import io
import json
import re

import pytest

from tests.builders import solid_jpegs, write_labels
from tlcore.dataset import DatasetIndex, Split
from tlcore.errors import ConfigError
from tlcore.training import LearningRate, class_weights, holdout_indices


@pytest.fixture
def noisy(project):
    """Two classes of noisy, close colours: a centroid that jumps to each image it sees (learning rate 1)
    makes the validation accuracy change from epoch to epoch."""
    root = project.root / "noisy"
    for split, count, seed in (("training", 12, 0), ("validation", 10, 1)):
        solid_jpegs(root / split, ["red", "green"], per_class=count, size=16, seed=seed, shift=90)
    write_labels(root, {"red": 0, "green": 1})
    project.values.update(dataset_training_dir="noisy/training", dataset_validation_dir="noisy/validation",
                          learning_rate=1.0, epochs=8, batch_size=4, seed=3)
    return project


def epoch_lines(output):
    return re.findall(r"val_loss: ([\d.]+) - val_acc: ([\d.]+)", output)


def test_early_stopping_watches_a_hold_out_of_training_images_by_default(noisy):
    result = noisy.run(config=noisy.write(early_stopping_patience=2))
    assert result.exit_code == 0, result.output
    assert ("Early stopping watches a hold-out of 2 training images: val_loss and val_acc below are measured on it, "
            "not on the validation images") in result.output, "10% of each class's 12"
    record = noisy.results()["early_stopping"]
    assert record["monitor"] == "holdout" and record["holdout_images"] == 2
    assert re.search(r"Dataset: 24 training", result.output)
    assert "22/22 [" in result.output, "the 2 held-out images do not train"
    assert noisy.results()["num_images"] == 20, "the validation images only measure"


def test_the_restored_weights_are_the_best_epochs(noisy):
    """Watching the validation images (the explicit opt-in), the reported Top-1 is exactly the best epoch's."""
    result = noisy.run(config=noisy.write(early_stopping_patience=8, early_stopping_monitor="validation"))
    assert result.exit_code == 0, result.output
    assert "Warning: early stopping watches the validation images, so their Top-1 accuracy is optimistic" \
        in result.output
    lines = [(float(loss), float(acc)) for loss, acc in epoch_lines(result.output)]
    best = min(range(len(lines)), key=lambda i: lines[i][0])
    assert best != len(lines) - 1, "the data must make a later epoch worse, or the test proves nothing"
    results = noisy.results()
    assert results["early_stopping"]["best_epoch"] == best + 1
    assert f"Kept the weights of epoch {best + 1}" in result.output
    assert results["top_1_accuracy"] == pytest.approx(lines[best][1])
    history = json.loads((noisy.root / "out" / "saved_model" / "tl_run.json").read_text())["history"]
    assert len(history) == len(lines)


def test_training_stops_after_patience_epochs_without_improvement(noisy):
    result = noisy.run(config=noisy.write(early_stopping_patience=1, early_stopping_monitor="validation", epochs=30))
    assert result.exit_code == 0, result.output
    stopped = noisy.results()["early_stopping"]
    assert stopped["stopped_after_epoch"] == stopped["best_epoch"] + 1 < 30
    assert "Early stopping: no improvement for 1 epochs." in result.output
    assert len(epoch_lines(result.output)) == stopped["stopped_after_epoch"]


def test_without_early_stopping_every_epoch_runs_and_nothing_is_held_out(noisy):
    result = noisy.run(config=noisy.write())
    assert len(epoch_lines(result.output)) == 8 and "hold-out" not in result.output
    assert "early_stopping" not in noisy.results()


def test_holdout_is_stratified_seeded_and_keeps_a_training_image_per_class():
    split = Split("training", "root", tuple((f"{label}_{i}", label) for label, count in ((0, 10), (1, 3), (2, 1))
                                             for i in range(count)))
    held = holdout_indices(split, 0.2, seed=1)
    assert sorted(split.samples[i][1] for i in held) == [0, 0, 1], "20% of 10, at least 1 of 3, none of 1"
    assert held == holdout_indices(split, 0.2, seed=1) != holdout_indices(split, 0.2, seed=2)


def test_learning_rate_schedules():
    constant = LearningRate(0.1, "constant", 0, epochs=4, steps_per_epoch=10)
    assert not constant.varies and constant(0) == constant(39) == 0.1
    warm = LearningRate(0.1, "cosine", 1, epochs=4, steps_per_epoch=10)
    assert warm.varies
    assert warm(0) == pytest.approx(0.01) and warm(9) == pytest.approx(0.1), "linear warm-up over the first epoch"
    assert warm(10) == pytest.approx(0.1) and warm(25) == pytest.approx(0.05, abs=0.01)
    assert warm(39) < 0.001 and all(warm(i) >= warm(i + 1) for i in range(10, 39)), "cosine decay to 0"


def test_a_schedule_changes_the_rate_the_framework_trains_with(noisy, tmp_path, monkeypatch):
    from tests import fake_framework

    rates = []
    original = fake_framework.CentroidSteps.set_learning_rate
    monkeypatch.setattr(fake_framework.CentroidSteps, "set_learning_rate",
                        lambda self, rate: (rates.append(rate), original(self, rate)))
    assert noisy.run(config=noisy.write(learning_rate_schedule="cosine", warmup_epochs=1)).exit_code == 0
    assert len(rates) == 8 * 6 and rates[0] == pytest.approx(1 / 6) and rates[-1] < 0.01


def dataset_of(counts):
    samples = tuple((f"{label}_{i}.jpg", label) for label, count in enumerate(counts) for i in range(count))
    split = Split("training", "root", samples)
    return DatasetIndex(labels={name: i for i, name in enumerate(["cat", "dog", "fox"][:len(counts)])},
                        training=split, validation=split)


def test_balanced_class_weights_make_every_class_count_alike(project, tmp_path):
    from tlcore.config import load_config

    config = load_config(project.write(class_weight="balanced"))
    weights = class_weights(config, dataset_of([8, 2, 2]))
    assert weights.tolist() == pytest.approx([12 / 24, 12 / 6, 12 / 6])
    given = dataclasses.replace(config, class_weight={"dog": 3.0})
    assert class_weights(given, dataset_of([8, 2, 2])).tolist() == [1.0, 3.0, 1.0]
    with pytest.raises(ConfigError, match='"class_weight" names "dgo", which is not a class; did you mean "dog"'):
        class_weights(dataclasses.replace(config, class_weight={"dgo": 3.0}), dataset_of([8, 2, 2]))


@pytest.mark.parametrize("value, message", [
    ("balance", 'is "balance"; use "balanced"'),
    ({"cat": -1}, 'weight of "cat" is -1; weights are numbers from 0 to 10000'),
    ({"cat": 1e308}, 'weight of "cat" is 1e+308; weights are numbers from 0 to 10000'),
    ({"cat": 0, "dog": 0, "fox": 0}, "gives every class the weight 0, so nothing would be learned"),
    ([1, 2], 'must be "balanced", null or an object'),
])
def test_bad_class_weights_are_one_line(project, value, message):
    from tests.conftest import one_line_error

    result = project.run(config=project.write(class_weight=value))
    assert message in one_line_error(result)


class TwoWorkers:
    """Collectives of a 2-worker cluster whose other worker reports what this one does."""

    def all_gather(self, value):
        return [value, value]

    def broadcast(self, value):
        return value

    def sum(self, values):
        return [2 * value for value in values]

    def close(self):
        pass


def test_streamed_images_are_decoded_by_one_worker_each_and_every_worker_steps_every_batch(tmp_path, monkeypatch):
    import tlcore.loader as loader
    from tlcore.config import load_config
    from tlcore.distributed import Cluster
    from tlcore.preprocessing import PRESETS, Preprocessing
    from tlcore.report import Reporter
    from tlcore.training import StreamedData
    from tests.conftest import write_config

    solid_jpegs(tmp_path / "training", ["cat", "dog"], per_class=5)
    paths = sorted((tmp_path / "training").rglob("*.jpg"))
    (paths[3]).write_bytes(b"\xff\xd8\xff not a jpeg")  # undecodable: left out, and named
    split = Split("training", tmp_path / "training", tuple((path, int(path.parent.name == "dog")) for path in paths))
    dataset = DatasetIndex(labels={"cat": 0, "dog": 1}, training=split, validation=split)
    write_labels(tmp_path, {"cat": 0, "dog": 1})
    config = load_config(write_config(tmp_path, dataset_training_dir="training", dataset_validation_dir="training",
                                      batch_size=4, augmentation=["flip"], output_dir="out", evaluate_result_dir="out"))
    preprocessing = Preprocessing("unit", 16, *PRESETS["unit"])
    decoded, original = [], loader.decode
    monkeypatch.setattr(loader, "decode", lambda path, size: decoded.append(path) or original(path, size))

    def epoch(rank):
        decoded.clear()
        reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
        data = StreamedData(dataset, preprocessing, config, reporter, seed=1,
                            cluster=Cluster(rank, 2, "test", "here", TwoWorkers()))
        batches = [labels.tolist() for _, labels in data.training(epoch=1)]
        return batches, sorted(decoded), reporter.stream.getvalue() + reporter.err.getvalue()

    (first, by_first, said), (second, by_second, said_second) = epoch(0), epoch(1)
    assert len(first) == len(second) == 3, "10 images in batches of 4: both workers take the 3 steps"
    sizes = [len(a) + len(b) for a, b in zip(first, second, strict=True)]
    assert sum(sizes) == 9 and all(size <= whole for size, whole in zip(sizes, [4, 4, 2], strict=True)), \
        "the parts make up each batch of 4 (the last of 2), less the image that cannot be decoded"
    assert not set(by_first) & set(by_second) and len(by_first) + len(by_second) == 10, "each image decoded once"
    assert paths[3].name in said + said_second, "the worker that met it names the image that cannot be decoded"


def test_a_loss_that_is_not_a_number_stops_the_run_and_nothing_is_published(project, monkeypatch):
    """Training that diverged is no success: one line naming the epoch, exit 1, no model saved."""
    from tests import fake_framework
    from tests.conftest import one_line_error

    measured = fake_framework.CentroidSteps.measure

    def diverging(self, inputs, labels):
        result, features = measured(self, inputs, labels)
        return dataclasses.replace(result, loss=float("nan")), features

    monkeypatch.setattr(fake_framework.CentroidSteps, "measure", diverging)
    result = project.run()
    assert result.exit_code == 1
    assert one_line_error(result).startswith("Error: training diverged in epoch 1 (loss nan")
    assert not (project.root / "out" / "saved_model").exists()
