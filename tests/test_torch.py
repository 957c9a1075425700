"""The PyTorch framework pack: the same product as Keras, on torch and torchvision (tiny inputs)."""

import io
import json
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.builders import texture_dataset, write_config
from tests.conftest import REPO, Project, one_line_error, run_tl
from tlcore.errors import ModelError
from tlcore.report import Reporter

pytestmark = pytest.mark.torch

SIZE = 64
SHARED = {"weights": None, "mobilenet_alpha": 0.35, "input_tensor_size": SIZE, "epochs": 10, "batch_size": 16,
          "learning_rate": 0.003, "seed": 0}
"""One configuration for both frameworks: random-weight MobileNetV2 learns the textures with it (Top-1
0.53-0.68 over seeds 0-2 for either framework; 0.33, chance, with a learning rate of 1e-8)."""


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    return texture_dataset(tmp_path_factory.mktemp("textures"), train_per_class=40, val_per_class=20, crop=SIZE)


def texture_project(root, textures, **changes):
    project = Project(root)
    project.values.update({"dataset_training_dir": str(textures / "training"),
                           "dataset_validation_dir": str(textures / "validation"), **changes})
    project.write()
    return project


@pytest.fixture(scope="module")
def runs(textures, tmp_path_factory):
    """The same configuration run with each framework: ``{framework: (project, CLI result)}``."""
    done = {}
    for framework in ("keras", "torch"):
        project = texture_project(tmp_path_factory.mktemp(framework), textures, framework=framework, **SHARED)
        done[framework] = project, project.run(fake=False)
    return done


@pytest.mark.tensorflow
def test_the_same_configuration_trains_with_keras_and_with_torch(runs):
    """Both learn the textures, print the same kind of output and write results.json with the same keys."""
    results = {}
    for framework, (project, result) in runs.items():
        assert result.exit_code == 0, result.output
        assert f"(framework {framework})" in result.output.splitlines()[0]
        # 40 images per class: one augmented view each ("augmentation_views": "auto")
        assert re.search(r"^features of training images and 1 view 120/120 \[=+\] - [\d.]+ img/s", result.output, re.M)
        assert re.search(r"^Epoch 10/10$", result.output, re.M)
        assert re.search(r"loss: [\d.]+ - acc: [\d.]+ - val_loss: [\d.]+ - val_acc: [\d.]+$", result.output, re.M)
        results[framework] = project.results()
        assert results[framework]["top_1_accuracy"] >= 0.5, (framework, results[framework])  # chance: 0.33
        record = json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
        assert record["framework"] == framework and len(record["history"]) == 10
    assert set(results["keras"]) == set(results["torch"])
    assert set(results["keras"]["per_class"]) == set(results["torch"]["per_class"]) == {"brick", "grass", "gravel"}


def validation_inputs(project, textures):
    """The validation images as preprocessing.json says the model takes them, computed with PIL, not tl."""
    from PIL import Image

    saved = project.root / "out" / "saved_model"
    preprocessing = json.loads((saved / "preprocessing.json").read_text())
    labels = json.loads((saved / "labels.json").read_text())
    paths = sorted((textures / "validation").glob("*/*.jpg"))
    size = preprocessing["size"]
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
                       for p in paths])
    images = (pixels - np.asarray(preprocessing["mean"])) / np.asarray(preprocessing["std"])
    assert preprocessing["layout"] == "NCHW" and preprocessing["name"] == "imagenet"
    return images.transpose(0, 3, 1, 2).astype(np.float32), np.asarray([labels[p.parent.name] for p in paths])


def test_the_saved_model_loads_without_tl_and_scores_the_reported_accuracy(runs, textures):
    import torch

    project, _ = runs["torch"]
    images, labels = validation_inputs(project, textures)
    model = torch.export.load(str(project.root / "out" / "saved_model" / "model.pt2")).module()
    with torch.no_grad():
        scores = model(torch.from_numpy(images)).numpy()
    assert scores.shape == (60, 3) and np.allclose(scores.sum(axis=1), 1, atol=1e-5), "softmax scores"
    accuracy = float(np.mean(scores.argmax(axis=1) == labels))
    assert abs(accuracy - project.results()["top_1_accuracy"]) <= 1 / 60 + 1e-9


@pytest.fixture
def reporter():
    return Reporter(stream=io.StringIO(), err=io.StringIO())


def remove_top(model, reporter, remove="auto"):
    from tlplugins.top_removal.torch_head import tl_remove_top_layer

    return tl_remove_top_layer(model=model, config=SimpleNamespace(options={"remove_top": remove}), reporter=reporter)


def test_torchvision_heads_are_removed(reporter):
    import torch
    import torchvision

    mobilenet = torchvision.models.mobilenet_v2(weights=None, width_mult=0.35, num_classes=7).eval()
    features = remove_top(mobilenet, reporter)
    assert features(torch.zeros(1, 3, 32, 32)).shape == (1, 1280)
    assert "Top layers removed: classifier.0 (Dropout), classifier.1 (Linear)" in reporter.stream.getvalue()

    resnet = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    assert remove_top(resnet, reporter)(torch.zeros(1, 3, 32, 32)).shape == (1, 512)
    assert "Top layers removed: fc (Linear)" in reporter.stream.getvalue()


def test_a_sequential_model_loses_its_classifying_tail(reporter):
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1),
                          nn.Linear(4, 10), nn.Softmax(dim=1))
    features = remove_top(model, reporter)
    assert [type(m).__name__ for m in features] == ["Conv2d", "ReLU", "AdaptiveAvgPool2d"]
    assert "Top layers removed: 3 (Flatten), 4 (Dropout), 5 (Linear), 6 (Softmax)" in reporter.stream.getvalue()
    with pytest.raises(ModelError, match="no layer that could give features"):
        remove_top(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), reporter)


def test_an_embedding_last_layer_warns_when_removed_and_remove_top_false_keeps_every_layer(reporter):
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 16))
    assert [type(m).__name__ for m in remove_top(model, reporter)] == ["Conv2d", "ReLU", "AdaptiveAvgPool2d"]
    assert 'the last layer, "4" (16 outputs, no softmax), does not look like a classifier' in reporter.err.getvalue()

    kept = Reporter(stream=io.StringIO(), err=io.StringIO())
    assert remove_top(model, kept, remove=False) is model
    assert "none removed (\"remove_top\": false); features are the model's output" in kept.stream.getvalue()
    assert kept.err.getvalue() == ""


def test_a_model_without_a_top_is_used_as_it_is(reporter):
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert remove_top(model, reporter) is model
    assert "Top layers: none to remove" in reporter.stream.getvalue()


def small_cnn():
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def user_config(tmp_path, path, size=32, **changes):
    import dataclasses

    from tlcore.config import RunConfig

    options = {"source_torch_model": path, "weights": "imagenet", "mobilenet_alpha": 1.0}
    options.update((key, changes.pop(key)) for key in list(changes) if key in options)  # the base model's keys
    return dataclasses.replace(RunConfig(
        config_file=tmp_path / "configuration.json", dataset_training_dir=tmp_path, dataset_validation_dir=tmp_path,
        evaluate_label_file=tmp_path / "labels.json", output_dir=tmp_path / "out", evaluate_result_dir=tmp_path,
        input_tensor_size=size, framework="torch", options=options), **changes)


def load_base(config, reporter):
    from tlplugins.torch.base_model import tl_load_base_model
    from tlplugins.torch.bases import tl_base_models

    mobilenet = next(base for base in tl_base_models() if base.name == "mobilenet_v2")
    return tl_load_base_model(config=config, reporter=reporter, base=mobilenet)


@pytest.mark.parametrize("form", ["pickled", "torchscript", "export"])
def test_a_whole_model_loads_in_each_documented_form(tmp_path, reporter, form):
    import torch

    model = small_cnn().eval()
    path = tmp_path / f"model.{form}"
    if form == "pickled":
        torch.save(model, path)
    elif form == "torchscript":
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, 32, 32)), path)
    else:
        torch.export.save(torch.export.export(model, (torch.zeros(1, 3, 32, 32),)), path)
    loaded = load_base(user_config(tmp_path, path), reporter)
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(images), model(images), atol=1e-6)
    assert f"Base model: {path}" in reporter.stream.getvalue()


def test_a_model_file_that_is_not_a_whole_model_says_what_to_save(tmp_path, reporter):
    import torch

    weights = tmp_path / "weights.pt"
    torch.save(small_cnn().state_dict(), weights)
    with pytest.raises(ModelError, match=r"holds only weights \(a state dict\), not a model; save the whole model"):
        load_base(user_config(tmp_path, weights), reporter)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match=r"PyTorch cannot load the model .*garbage.pt"):
        load_base(user_config(tmp_path, garbage), reporter)


def test_a_model_that_cannot_take_the_input_size_says_so(tmp_path, reporter):
    import torch
    from torch import nn

    path = tmp_path / "fixed.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(3 * 48 * 48, 4)), path)
    with pytest.raises(ModelError, match=r"cannot take 32x32 RGB images .*; set input_tensor_size to the size it was"):
        load_base(user_config(tmp_path, path), reporter)


def test_mobilenet_v2_loads_a_local_weights_file_and_refuses_another_width(tmp_path, reporter):
    import torch
    import torchvision

    donor = torchvision.models.mobilenet_v2(weights=None, width_mult=0.35)
    path = tmp_path / "mobilenet_v2_0.35.pth"
    torch.save(donor.state_dict(), path)
    model = load_base(user_config(tmp_path, None, weights=path, mobilenet_alpha=0.35), reporter)
    assert all(torch.equal(model.state_dict()[name], value)
               for name, value in donor.state_dict().items() if name.startswith("features."))
    with pytest.raises(ModelError, match=r"does not hold the weights of torchvision's mobilenet_v2\(width_mult=0.5\): "
                                         r".* other shapes"):
        load_base(user_config(tmp_path, None, weights=path, mobilenet_alpha=0.5), reporter)


def test_random_mobilenet_v2_features_are_informative_not_vanishing(tmp_path, reporter):
    import torch

    model = load_base(user_config(tmp_path, None, weights=None, mobilenet_alpha=0.35, seed=0), reporter)
    images = torch.rand(4, 3, 32, 32) * 4 - 2
    with torch.no_grad():
        features = model.features(images).mean(dim=(2, 3))
    assert 0.1 < float(features.std()) < 100
    assert float((features[0] - features[1]).abs().mean()) > 0.01, "different images, different features"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A tiny coloured dataset for short torch runs."""
    from tests.builders import colour_project

    root = tmp_path_factory.mktemp("small")
    colour_project(root, framework="torch", train_per_class=4, val_per_class=2)
    return root


def configure(root, **changes):
    from tests.builders import colour_project

    return colour_project(root, framework="torch", **{"epochs": 2, "seed": 3, **changes})


def test_with_augmentation_and_no_views_or_fine_tuning_images_stream_through_the_whole_model(small):
    for extra in ({"augmentation": ["flip", "zoom"], "augmentation_views": 0}, {"fine_tune_layers": 5}):
        result = run_tl("run", configure(small, **extra))
        assert result.returncode == 0, (extra, result.stderr)
        assert "features computed once" not in result.stdout, extra
        assert json.loads((small / "out" / "results.json").read_text())["num_images"] == 4


def test_fine_tuning_trains_only_the_last_layers(tmp_path, reporter):
    import torch
    from torch import nn

    from tlplugins.torch.trainer import freeze, leaf_modules

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU())
    freeze(model, 2)
    trainable = [any(p.requires_grad for p in layer.parameters()) for layer in leaf_modules(model)]
    assert trainable == [False, False, False, True, False]
    freeze(model, 0)
    assert not any(p.requires_grad for p in model.parameters())
    assert torch.is_grad_enabled()


def test_a_seeded_run_repeats_exactly_even_with_augmentation(small):
    config = configure(small, augmentation=["flip", "rotation"], seed=7)
    runs = [run_tl("run", config) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    epoch_lines = [[line[line.index("loss:"):] for line in run.stdout.splitlines() if "val_loss" in line]
                   for run in runs]
    assert epoch_lines[0] == epoch_lines[1] and len(epoch_lines[0]) == 2


def test_ctrl_c_while_training_stops_and_writes_nothing(small, tmp_path):
    from tests.test_keras_e2e import LiveRun

    root = tmp_path / "live"
    root.mkdir()
    config = configure(small, epochs=100000, output_dir=str(root / "out"), evaluate_result_dir=str(root / "out"))
    run = LiveRun(config)
    try:
        run.wait_for("Epoch 2/")
        assert run.stop(signal.SIGINT) == 130, run.output
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert "Interrupted" in run.output and "Traceback" not in run.output
    assert re.search(r"`tl run --resume` continues after epoch \d+\.", run.output), run.output
    assert [path.name for path in (root / "out").iterdir()] == [".tl-checkpoint"], "no output, only the checkpoint"


def test_imagenet_download_failure_names_the_ways_out(small, tmp_path):
    offline = {"TORCH_HOME": str(tmp_path / "torch_home"), "https_proxy": "http://127.0.0.1:9",
               "HTTPS_PROXY": "http://127.0.0.1:9"}
    config = write_config(small, name="imagenet.json", **{**json.loads(configure(small).read_text()),
                                                          "weights": "imagenet", "mobilenet_alpha": 1.0})
    result = run_tl("run", config, env=offline, timeout=120)
    assert result.returncode == 1
    error = one_line_error(result)
    assert "could not get the ImageNet weights" in error and '"weights"' in error and "null" in error, error


def test_imagenet_weights_exist_only_at_width_one(small):
    config = write_config(small, name="alpha.json", **{**json.loads(configure(small).read_text()),
                                                       "weights": "imagenet", "mobilenet_alpha": 0.35})
    result = run_tl("run", config)
    assert "ImageNet weights for MobileNetV2 at width 1.0 only, not 0.35" in one_line_error(result)


def test_two_phase_fine_tuning_trains_the_head_then_the_last_layers(small):
    result = run_tl("run", configure(small, epochs=2, fine_tune_layers=4, fine_tune_epochs=1))
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/3 (head)" in result.stdout and "Epoch 3/3 (fine-tuning the last 4 layers)" in result.stdout
    assert "on features computed once" in result.stdout, "the head's phase runs on cached features"
    assert "Training a 2-way head on last 4 layers trainable of MobileNetV2: 1 epoch" in result.stdout


def test_early_stopping_keeps_the_best_epochs_weights(small):
    """Watching the validation images, the saved model's Top-1 is the best epoch's val_acc."""
    result = run_tl("run", configure(small, epochs=6, learning_rate=0.5, early_stopping_patience=6,
                                     early_stopping_monitor="validation"))
    assert result.returncode == 0, result.stderr
    results = json.loads((small / "out" / "results.json").read_text())
    best = results["early_stopping"]["best_epoch"]
    accuracies = [float(acc) for acc in re.findall(r"val_acc: ([\d.]+)", result.stdout)]
    assert results["top_1_accuracy"] == pytest.approx(accuracies[best - 1], abs=1e-4)


@pytest.mark.tensorflow
def test_both_frameworks_search_the_head_on_cached_features_and_record_what_they_tried(runs):
    """The configuration sets learning_rate and epochs: the search varies weight_decay and label_smoothing only,
    and each framework then trains its head with the chosen values."""
    for framework, (project, result) in runs.items():
        line = re.search(r"^Head search: (\d+) heads on (\d+) folds of 120 training images in [\d.]+ s; chose "
                         r"weight_decay ([\d.e-]+), label_smoothing ([\d.]+) \(cross-validated accuracy [\d.]+\)$",
                         result.output, re.M)
        assert line, (framework, result.output)
        search = project.results()["head_search"]
        assert int(line[1]) == len(search["tried"]) >= 6 and int(line[2]) == search["folds"] == 5
        assert search["fixed"] == ["learning_rate", "epochs"]
        assert search["chosen"]["learning_rate"] == SHARED["learning_rate"] and search["chosen"]["epochs"] == 10
        assert {row["learning_rate"] for row in search["tried"]} == {SHARED["learning_rate"]}
        best = max(search["tried"], key=lambda row: (row["cv_accuracy"], -row["cv_loss"]))
        assert search["chosen"]["weight_decay"] == best["weight_decay"] == float(line[3])
        record = json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
        assert record["metrics"]["head_search"] == search
        page = (project.root / "results" / "summary.html").read_text()
        assert '<h2 id="head-search">Head search</h2>' in page and "never on the validation images" in page


@pytest.mark.tensorflow
@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_tl_check_checks_the_data_without_training(textures, tmp_path, framework):
    import shutil

    dataset = tmp_path / "dataset"
    shutil.copytree(textures, dataset)
    first = sorted((dataset / "training" / "brick").iterdir())[0]
    shutil.copy(first, dataset / "validation" / "brick" / "copy-of-a-training-image.jpg")
    project = texture_project(tmp_path, dataset, framework=framework, **SHARED)
    project.values.update(dataset_training_dir=str(dataset / "training"),
                          dataset_validation_dir=str(dataset / "validation"))
    result = run_tl("check", project.write(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "data check: 1 validation image is also in training" in result.stdout + result.stderr
    findings = json.loads((tmp_path / "results" / "data_health.json").read_text())["findings"]
    across = [finding for finding in findings if finding["kind"] == "duplicate_across_splits"]
    assert [sorted(finding["paths"]) for finding in across] == [sorted([str(first), str(
        dataset / "validation" / "brick" / "copy-of-a-training-image.jpg")])]
    assert (tmp_path / "results" / "data_health.csv").is_file()
    assert not (tmp_path / "out" / "saved_model").exists() and not (tmp_path / "results" / "results.json").exists()


KERAS_IMAGENET = Path("~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5").expanduser()


@pytest.mark.tensorflow
@pytest.mark.skipif(not KERAS_IMAGENET.is_file(), reason="real ImageNet MobileNetV2 weights are not in Keras' cache "
                    "(they download on first use where the network allows)")
def test_on_real_features_the_check_finds_a_cropped_copy_and_a_flipped_label(tmp_path):
    """examples/photos with a copy of a training photo, cropped by 8 % and re-encoded, put in validation, and a
    fish photo moved into the tool class: both are found, the fish first among the label findings."""
    import shutil

    from PIL import Image

    photos = REPO / "examples" / "photos" / "dataset"
    dataset = tmp_path / "dataset"
    shutil.copytree(photos, dataset)
    original = sorted((dataset / "training" / "animal").iterdir())[0]
    with Image.open(original) as image:
        width, height = image.size
        image.convert("RGB").crop((width * 4 // 100, height * 4 // 100, width * 96 // 100, height * 96 // 100)).save(
            dataset / "validation" / "animal" / "cropped.jpg", quality=70)
    fish = sorted((dataset / "training" / "fish").iterdir())[0]
    flipped = dataset / "training" / "tool" / fish.name
    fish.rename(flipped)
    project = Project(tmp_path)
    project.values.update(dataset_training_dir="dataset/training", dataset_validation_dir="dataset/validation",
                          batch_size=32, input_tensor_size=224, seed=0, framework="keras")
    result = run_tl("check", project.write(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    findings = json.loads((tmp_path / "results" / "data_health.json").read_text())["findings"]
    across = [sorted(f["paths"]) for f in findings if f["kind"] == "duplicate_across_splits"]
    assert sorted([str(original), str(dataset / "validation" / "animal" / "cropped.jpg")]) in across
    labels = [f for f in findings if f["kind"] == "likely_mislabelled"]
    assert labels and labels[0]["paths"] == [str(flipped)] and labels[0]["labels"][1] == "fish", labels[:3]


class PlantedModule:
    """A pickle that, once loaded, creates the file ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_predicting_with_a_saved_model_never_unpickles_it_and_quantizing_says_it_can_run_code(tmp_path):
    """tl predict loads the torch.export program, whose loading runs no code; model.pth, a pickle, is read only to
    quantize, after a line that says it can run code."""
    import pickle

    import torch
    from torch import nn

    from tlplugins.torch.saving import MODEL_FILE, MODULE_FILE, tl_load_model

    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 3, 8, 8),)), str(tmp_path / MODEL_FILE))
    (tmp_path / MODULE_FILE).write_bytes(pickle.dumps(PlantedModule(tmp_path / "ran")))

    said = io.StringIO()
    loaded = tl_load_model(path=tmp_path, reporter=Reporter(stream=said, err=said), purpose="predict")
    assert loaded(torch.zeros(1, 3, 8, 8)).shape == (1, 2)
    assert not (tmp_path / "ran").exists() and "can run code" not in said.getvalue()

    with pytest.raises(Exception):
        tl_load_model(path=tmp_path, reporter=Reporter(stream=said, err=said), purpose="quantize")
    assert f"Loading {tmp_path / MODULE_FILE}: a pickled PyTorch module, which can run code" in said.getvalue()
