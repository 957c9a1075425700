"""`tl predict` and tlcore.prediction: the top labels of images with a saved model, float or quantized.

Most tests use the fake framework (nearest mean colour, pure numpy); one Keras and one PyTorch test show
that the real frameworks' saved models load and score as the run scored them.
"""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from tlcli.main import main
from tests.conftest import JPEG_SHELL, REPO, one_line_error, tiny_jpeg
from tlcore.errors import ConfigError, ModelError

FAKE = ("-p", "tests.fake_framework")


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def predict_cli(model, *args):
    return invoke("predict", model, *args, *FAKE)


@pytest.fixture
def trained(project):
    """The project after `tl run` (fake framework): out/saved_model."""
    assert project.run().exit_code == 0
    return project


@pytest.fixture
def quantized(trained):
    """The project after `tl run` and `tl quantize`: out/saved_model and out/imx500."""
    result = invoke("quantize", trained.config_path, *FAKE)
    assert result.exit_code == 0, result.output
    return trained


def validation_images(project):
    return sorted((project.root / "dataset" / "validation").rglob("*.jpg"))


def expected_scores(model_folder, paths):
    """What the saved fake model gives ``paths``, computed here from its files: decoding, preprocessing.json,
    the centroids."""
    from tests.fake_framework import mean_colour, scores
    from tlcore.images import decode
    from tlcore.preprocessing import Preprocessing

    preprocessing = Preprocessing.from_dict(json.loads((model_folder / "preprocessing.json").read_text()))
    model_file = next(model_folder.glob("model*.json"))
    centroids = np.asarray(json.loads(model_file.read_text())["centroids"])
    pixels = np.stack([decode(str(path), preprocessing.size) for path in paths])
    return scores(centroids, mean_colour(preprocessing.apply(pixels)))


# --- the three formats ----------------------------------------------------------------------------------


def test_json_is_a_list_of_path_and_predictions_best_first_as_the_model_scores_them(trained):
    images = validation_images(trained)
    result = predict_cli(trained.root / "out" / "saved_model", *images, "--json")
    assert result.exit_code == 0, result.stderr
    entries = json.loads(result.stdout)  # stdout is only the JSON: the model line and progress go to stderr
    assert [entry["path"] for entry in entries] == [str(path) for path in images]
    labels = json.loads((trained.root / "out" / "saved_model" / "labels.json").read_text())
    expected = expected_scores(trained.root / "out" / "saved_model", images)
    for entry, row in zip(entries, expected, strict=True):
        assert list(entry) == ["path", "predictions"]
        assert all(list(p) == ["label", "score"] for p in entry["predictions"])
        scores = [p["score"] for p in entry["predictions"]]
        assert scores == sorted(scores, reverse=True)
        assert len(scores) == 3, "--top-k 5 with 3 classes shows the 3"
        assert entry["predictions"][0]["label"] == entry["path"].split("/")[-2], "an image of a class gets that class"
        for prediction in entry["predictions"]:
            assert prediction["score"] == pytest.approx(row[labels[prediction["label"]]], abs=1e-6), \
                "the same scores as the saved model gives the same pixels"
    assert "Model: " in result.stderr and "(float, framework fake, 3 classes)" in result.stderr


def test_the_table_has_one_aligned_line_per_image_with_label_and_score_columns(trained):
    result = predict_cli(trained.root / "out", trained.root / "dataset" / "validation", "--top-k", 2)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    for line in lines:
        path, best, runner_up = [cell.strip() for cell in line.split("  ") if cell.strip()]
        assert path.endswith(".jpg") and best.startswith(path.split("/")[-2] + " (")
        for cell in (best, runner_up):
            assert re.fullmatch(r"(cat|dog|fox) \((0|1)\.\d{3}\)", cell), cell
    starts = {tuple(match.start() for match in re.finditer(r"(?<=  )\S", line)) for line in lines}
    assert len(starts) == 1, "the label columns line up"


def test_csv_has_a_header_and_a_row_per_image_and_rank(trained):
    images = validation_images(trained)[:2]
    result = predict_cli(trained.root / "out", *images, "--csv", "--top-k", 2)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["path"], row["rank"]) for row in rows] == [(str(images[0]), "1"), (str(images[0]), "2"),
                                                            (str(images[1]), "1"), (str(images[1]), "2")]
    assert rows[0]["label"] == images[0].parent.name and float(rows[0]["score"]) > float(rows[1]["score"])


def test_json_and_csv_together_is_a_usage_error(trained):
    result = predict_cli(trained.root / "out", validation_images(trained)[0], "--json", "--csv")
    assert result.exit_code == 2 and "choose one of --json and --csv" in result.output


@pytest.mark.parametrize("top_k, shown", [(1, 1), (2, 2), (50, 3)])
def test_top_k_shows_that_many_labels_and_never_more_than_the_classes(trained, top_k, shown):
    result = predict_cli(trained.root / "out", validation_images(trained)[0], "--json", "--top-k", top_k)
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)[0]["predictions"]) == shown


def test_top_k_zero_is_refused(trained):
    result = predict_cli(trained.root / "out", validation_images(trained)[0], "--top-k", 0)
    assert result.exit_code == 2 and "--top-k" in result.output


def test_label_ids_no_class_has_are_never_shown(project):
    from tests.builders import write_labels

    write_labels(project.root / "dataset", {"cat": 0, "dog": 2, "fox": 5})  # outputs 1, 3 and 4 are unused
    assert project.run().exit_code == 0
    result = predict_cli(project.root / "out", validation_images(project)[0], "--json", "--top-k", 6)
    labels = [p["label"] for p in json.loads(result.stdout)[0]["predictions"]]
    assert sorted(labels) == ["cat", "dog", "fox"]


# --- images and folders ---------------------------------------------------------------------------------


def test_folders_are_searched_recursively_in_order_skipping_hidden_and_non_images(trained, tmp_path):
    photos = tmp_path / "photos"
    (photos / "b" / "deeper").mkdir(parents=True)
    (photos / ".hidden").mkdir()
    for name in ("b/deeper/z.png", "b/a.JPG", "a.jpeg", ".secret.jpg", ".hidden/x.jpg"):
        (photos / name).write_bytes(tiny_jpeg((200, 40, 40)))  # PNG, JPEG: the content decides, not the suffix
    (photos / "notes.txt").write_text("not an image")
    single = validation_images(trained)[-1]
    result = predict_cli(trained.root / "out", single, photos, "--json")
    assert result.exit_code == 0, result.stderr
    assert [entry["path"] for entry in json.loads(result.stdout)] == [
        str(single), str(photos / "a.jpeg"), str(photos / "b" / "a.JPG"), str(photos / "b" / "deeper" / "z.png")]
    assert "ignoring 1 file(s) that are not images by name" in result.stderr and "notes.txt" in result.stderr


def test_a_relative_path_is_printed_as_given(trained, monkeypatch):
    monkeypatch.chdir(trained.root)
    result = predict_cli("out", os.path.join("dataset", "validation", "dog"), "--csv", "--top-k", 1)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))[1:]
    assert [row[:3] for row in rows] == [["dataset/validation/dog/dog_0.jpg", "1", "dog"],
                                         ["dataset/validation/dog/dog_1.jpg", "1", "dog"]]


def test_an_image_that_cannot_be_decoded_is_named_and_the_others_are_predicted(trained):
    broken = trained.root / "broken.jpg"
    broken.write_bytes(JPEG_SHELL)
    good = validation_images(trained)[0]
    result = predict_cli(trained.root / "out", broken, good, "--json")
    assert result.exit_code == 0, result.stderr
    assert [entry["path"] for entry in json.loads(result.stdout)] == [str(good)]
    warning = next(line for line in result.stderr.splitlines() if line.startswith("Warning:"))
    assert "skipped 1 image(s) that cannot be decoded" in warning and str(broken) in warning


def test_when_no_image_can_be_decoded_it_is_an_error(trained):
    (trained.root / "broken.jpg").write_bytes(JPEG_SHELL)
    result = predict_cli(trained.root / "out", trained.root / "broken.jpg")
    assert result.exit_code == 2
    assert "none of the 1 image(s) could be decoded" in one_line_error(result)


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing.jpg", "not found: "),
    (lambda root: (root / "empty").mkdir() or root / "empty", "no images (.jpg, .jpeg, .png, .bmp, .gif, .webp) in"),
])
def test_missing_images_and_folders_without_images_are_one_line_errors(trained, make, message):
    result = predict_cli(trained.root / "out", make(trained.root))
    assert result.exit_code == 2
    assert message in one_line_error(result)


# --- the model folder -----------------------------------------------------------------------------------


@pytest.mark.parametrize("where, message", [
    ("dataset", "no model tl saved in"),
    ("missing", "model folder not found"),
    ("dataset/labels.json", "is a file, not a model folder"),
])
def test_a_folder_that_is_not_a_model_says_what_to_give(trained, where, message):
    result = predict_cli(trained.root / where, validation_images(trained)[0])
    assert result.exit_code == 2
    error = one_line_error(result)
    assert message in error and "output_dir/saved_model" in error and "output_dir/imx500" in error


def test_the_quantized_model_from_its_folder_or_from_output_dir_with_quantized(quantized):
    images = validation_images(quantized)
    folder = quantized.root / "out" / "imx500"
    preprocessing = json.loads((folder / "preprocessing.json").read_text())
    assert preprocessing["mean"] == [0, 0, 0] and preprocessing["std"] == [1, 1, 1], "raw pixels in"
    outputs = []
    for model in ((folder,), (quantized.root / "out", "--quantized")):
        result = predict_cli(*model, *images, "--json")
        assert result.exit_code == 0, result.stderr
        assert "(quantized, framework fake, 3 classes)" in result.stderr
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    expected = expected_scores(folder, images)
    for entry, row in zip(outputs[0], expected, strict=True):
        assert entry["predictions"][0]["label"] == entry["path"].split("/")[-2]
        assert entry["predictions"][0]["score"] == pytest.approx(row.max(), abs=1e-6)
    float_result = predict_cli(quantized.root / "out", *images, "--json")
    assert "(float, framework fake" in float_result.stderr, "an output_dir means its float model by default"


def test_an_output_dir_with_only_the_quantized_model_uses_it(quantized):
    shutil.rmtree(quantized.root / "out" / "saved_model")
    result = predict_cli(quantized.root / "out", validation_images(quantized)[0])
    assert result.exit_code == 0, result.stderr
    assert "(quantized, framework fake" in result.stderr


def test_quantized_without_a_quantized_model_says_how_to_make_one(trained):
    result = predict_cli(trained.root / "out", validation_images(trained)[0], "--quantized")
    assert result.exit_code == 2
    assert "no quantized model in" in one_line_error(result) and "tl quantize" in one_line_error(result)
    result = predict_cli(trained.root / "out" / "saved_model", validation_images(trained)[0], "--quantized")
    assert result.exit_code == 2
    assert "holds the float model and --quantized asks for the quantized one" in one_line_error(result)


def test_a_model_of_a_framework_that_is_not_loaded_names_it(trained):
    result = invoke("predict", trained.root / "out", validation_images(trained)[0])  # no -p tests.fake_framework
    assert result.exit_code == 2
    error = one_line_error(result)
    assert 'saved by framework "fake", which is not available' in error and "-p MODULE" in error


@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / "tl_run.json").write_text("{oops"), "cannot read"),
    (lambda folder: (folder / "tl_run.json").write_text('{"configuration": {}}'), "does not say which framework"),
    (lambda folder: (folder / "labels.json").unlink(), "has no labels.json"),
    (lambda folder: (folder / "labels.json").write_text('{"cat": "zero"}'), 'the id of "cat" is "zero"'),
    (lambda folder: (folder / "preprocessing.json").write_text('{"name": "unit"}'), "is not what tl wrote"),
])
def test_a_damaged_model_folder_is_a_model_error(trained, damage, message):
    damage(trained.root / "out" / "saved_model")
    result = predict_cli(trained.root / "out", validation_images(trained)[0])
    assert result.exit_code == 1
    assert message in one_line_error(result)


# --- progress, start-up, Python --------------------------------------------------------------------------


SLOW = textwrap.dedent("""
    import time

    from tlcore.hookspecs import hookimpl

    TL_FRAMEWORK = "fake"


    @hookimpl(tryfirst=True)
    def tl_predict(model, images):
        time.sleep(0.45)  # then the fake framework answers
""")


def test_a_slow_prediction_shows_progress_on_stderr_and_keeps_stdout_clean(trained, tmp_path, monkeypatch):
    (tmp_path / "slow_predict.py").write_text(SLOW)
    monkeypatch.syspath_prepend(str(tmp_path))
    images = validation_images(trained)  # 6 images, batches of 2 (the run's batch_size): 3 slow batches
    result = predict_cli(trained.root / "out", *images, "--json", "-p", "slow_predict")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 6
    assert "predicting 6/6 [========================]" in result.stderr


def test_predict_starts_without_importing_a_framework():
    """Predicting with a framework that needs neither TensorFlow nor torch imports neither: start-up is fast."""
    probe = textwrap.dedent("""
        import json, sys, tempfile
        from pathlib import Path
        from click.testing import CliRunner
        from tlcli.main import main
        from tests.conftest import Project, touch_images
        from tests.builders import write_labels

        root = Path(tempfile.mkdtemp())
        touch_images(root / "dataset" / "training", ["cat", "dog"], per_class=2)
        touch_images(root / "dataset" / "validation", ["cat", "dog"], per_class=1)
        write_labels(root / "dataset", {"cat": 0, "dog": 1})
        project = Project(root)
        assert project.run().exit_code == 0
        for args in (["predict", "--help"], ["predict", str(root / "out"), str(root / "dataset"), "--json",
                                             "-p", "tests.fake_framework"]):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "torch", "torchvision")))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_core_function_returns_results_and_prints_nothing_on_stdout(trained, capsys):
    from tlcore.pluginmanager import make_plugin_manager
    from tlcore.prediction import Prediction, predict
    from tlcore.report import Reporter

    progress = io.StringIO()
    reporter = Reporter(stream=progress, err=progress)
    results = predict(trained.root / "out", [trained.root / "dataset" / "validation"], top_k=2,
                      manager=make_plugin_manager(extra=["tests.fake_framework"]), reporter=reporter)
    assert all(isinstance(result, Prediction) for result in results)
    assert [(result.path.split("/")[-2], result.label) for result in results] == \
        [("cat", "cat"), ("cat", "cat"), ("dog", "dog"), ("dog", "dog"), ("fox", "fox"), ("fox", "fox")]
    assert results[0].score == results[0].predictions[0][1] and len(results[0].predictions) == 2
    assert results[0].to_dict()["predictions"][0] == {"label": "cat", "score": results[0].score}
    assert capsys.readouterr().out == ""
    assert "Model: " in progress.getvalue()


def test_the_core_function_checks_its_arguments(trained):
    from tlcore.prediction import find_model, predict

    with pytest.raises(ConfigError, match="top_k is 0"):
        predict(trained.root / "out", validation_images(trained), top_k=0)
    with pytest.raises(ConfigError, match="no images given"):
        predict(trained.root / "out", [])
    saved = find_model(trained.root / "out")
    assert (saved.folder.name, saved.framework, saved.quantized) == ("saved_model", "fake", False)
    (saved.folder / "labels.json").write_text("[]")
    with pytest.raises(ModelError, match="is not a JSON object"):
        saved.labels()


# --- the real frameworks ----------------------------------------------------------------------------------


def _predict_as_the_run_did(tmp_path, framework):
    """A tiny run (1 epoch), then `tl predict` on its validation images: each image's best label is its class
    unless the run counted it misclassified, and then it is the label and score the run reported."""
    from tests.builders import colour_project

    config = colour_project(tmp_path, framework=framework, train_per_class=3, val_per_class=2, seed=0)
    result = invoke("run", config)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    with open(out / "misclassified.csv", newline="") as handle:
        wrong = {row["path"]: row for row in csv.DictReader(handle)}
    images = sorted((tmp_path / "data" / "validation").rglob("*.jpg"))
    predicted = invoke("predict", out, *images, "--json")
    assert predicted.exit_code == 0, predicted.output
    entries = json.loads(predicted.stdout)
    assert [entry["path"] for entry in entries] == [str(path) for path in images]
    for entry in entries:
        best = entry["predictions"][0]
        assert sum(p["score"] for p in entry["predictions"]) == pytest.approx(1.0, abs=1e-4)
        if entry["path"] in wrong:
            assert best["label"] == wrong[entry["path"]]["predicted_label"]
            assert best["score"] == pytest.approx(float(wrong[entry["path"]]["predicted_score"]), abs=1e-4)
        else:
            assert best["label"] == entry["path"].split("/")[-2]
    assert f"(float, framework {framework}, 2 classes)" in predicted.stderr


@pytest.mark.tensorflow
def test_keras_saved_model_predicts_as_the_run_did(tmp_path):
    _predict_as_the_run_did(tmp_path, "keras")


@pytest.mark.torch
def test_torch_saved_model_predicts_as_the_run_did(tmp_path):
    _predict_as_the_run_did(tmp_path, "torch")
