"""The reports beside results.json (confusion matrix, per-class figures, misclassified images, curves, history,
TensorBoard, summary.html) and the metrics behind them, driven by the fake framework."""

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from tests.builders import write_labels
from tests.conftest import COLOURS, REPO, one_line_error, tiny_jpeg, touch_images
from tests.test_run import run_with
from tlcore.errors import OutputError
from tlcore.evaluation import Predictions
from tlcore.hookspecs import hookimpl
from tlcore.outputs import OWNED
from tlcore.report import Reporter

REPORTS = {"confusion_matrix.json", "confusion_matrix.png", "misclassified.csv", "history.csv",
           "training_curves.png", "summary.html", "data_health.csv", "data_health.json"}


def other_warnings(reporter):
    """The run's warnings but the data check's (these tests' datasets have very few images per class)."""
    return [line for line in reporter.warnings if not line.startswith("data check:")]


def results_dir(project):
    return project.root / "results"


def check_png(path, min_size=(400, 300)):
    """A valid PNG of at least ``min_size`` pixels; returns its size."""
    with Image.open(path) as image:
        assert image.format == "PNG", path
        image.verify()
    with Image.open(path) as image:
        image.load()
        width, height = image.size
    assert width >= min_size[0] and height >= min_size[1], f"{path.name} is {width}x{height}"
    return width, height


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def links(page):
    """Every href and src of summary.html, anchors (#...) left out."""
    return [html_unescape(link) for link in re.findall(r'(?:href|src)="([^"]*)"', page) if not link.startswith("#")]


def html_unescape(text):
    import html

    return html.unescape(text)


def check_links(results):
    """Every link of summary.html is relative and reaches an existing file or folder; returns them."""
    found = links((results / "summary.html").read_text(encoding="utf-8"))
    for link in found:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), f"not relative: {link}"
        assert (results / unquote(parts.path)).exists(), f"broken link: {link}"
    return found


def dataset_of(project, classes, train=2, val=2):
    """Replace the project's dataset with ``classes`` (each its colour, repeating after 6)."""
    dataset = project.root / "dataset"
    shutil.rmtree(dataset)
    touch_images(dataset / "training", classes, per_class=train)
    touch_images(dataset / "validation", classes, per_class=val)
    write_labels(dataset, {name: i for i, name in enumerate(classes)})


class Spy:
    """Keeps the predictions the metric plugins were given."""

    def __init__(self):
        self.predictions = []

    @hookimpl
    def tl_evaluate(self, predictions):
        self.predictions.append(predictions)


def counted(predictions):
    """The confusion matrix of ``predictions`` counted the plain way (rows: true id, columns: predicted id)."""
    size = predictions.scores.shape[1]
    matrix = np.zeros((size, size), dtype=int)
    for true, predicted in zip(predictions.label_ids, predictions.predicted, strict=True):
        matrix[true, predicted] += 1
    return matrix


def test_a_run_writes_every_report_beside_results_json_and_names_the_summary(project):
    result = project.run()
    assert result.exit_code == 0, result.output
    results = results_dir(project)
    assert f"Summary: {results / 'summary.html'}" in result.output
    assert {p.name for p in results.iterdir()} == REPORTS | {"results.json", OWNED}, "no tensorboard/ without the key"
    assert check_png(results / "confusion_matrix.png") and check_png(results / "training_curves.png")
    matrix = json.loads((results / "confusion_matrix.json").read_text())
    assert matrix["classes"] == ["cat", "dog", "fox"] and matrix["label_ids"] == [0, 1, 2]
    assert (matrix["rows"], matrix["columns"]) == ("true class", "predicted class")
    assert matrix["matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert sum(map(sum, matrix["matrix"])) == matrix["num_images"] == project.results()["num_images"] == 6
    assert read_csv(results / "misclassified.csv") == [
        ["path", "true_label", "predicted_label", "predicted_score", "true_label_score"]]
    history = read_csv(results / "history.csv")
    assert history[0] == ["epoch", "loss", "acc", "val_loss", "val_acc"]
    assert [row[0] for row in history[1:]] == ["1", "2"], "one row per epoch"
    found = check_links(results)
    assert {"confusion_matrix.png", "training_curves.png", "confusion_matrix.json", "misclassified.csv",
            "history.csv", "results.json"} <= set(found)
    health = json.loads((results / "data_health.json").read_text())["findings"]
    shown = {path for finding in health for path in finding["paths"]}
    assert not [link for link in found if "../dataset/validation" in link
                and not any(path.endswith(link.rsplit("/", 1)[-1]) for path in shown)], \
        "no mistakes: the only pictures are of the data check's findings"
    assert "top_5_accuracy" not in project.results(), "3 classes: no top-5"


def test_reports_count_what_the_model_got_wrong(project):
    """A constructed case: a green cat is taken for a dog, a blue dog for a fox."""
    validation = project.root / "dataset" / "validation"
    shutil.rmtree(validation)
    touch_images(validation, ["cat", "dog", "fox"], per_class=2)
    (validation / "cat" / "cat_2.jpg").write_bytes(tiny_jpeg(COLOURS[0]))
    (validation / "cat" / "green cat.jpg").write_bytes(tiny_jpeg(COLOURS[1]))
    (validation / "dog" / "blue dog.jpg").write_bytes(tiny_jpeg(COLOURS[2]))
    spy = Spy()
    _, reporter = run_with(project, spy)
    results = results_dir(project)
    assert not other_warnings(reporter)

    matrix = json.loads((results / "confusion_matrix.json").read_text())
    assert matrix["matrix"] == [[3, 1, 0], [0, 2, 1], [0, 0, 2]]
    assert sum(map(sum, matrix["matrix"])) == 9 == len(list(validation.glob("*/*.jpg")))
    assert matrix["matrix"] == counted(spy.predictions[0]).tolist(), "the matrix is the predictions'"

    per_class = project.results()["per_class"]
    expected = {"cat": (1.0, 0.75, 6 / 7), "dog": (2 / 3, 2 / 3, 2 / 3), "fox": (2 / 3, 1.0, 0.8)}
    for name, (precision, recall, f1) in expected.items():
        entry = per_class[name]
        assert entry["precision"] == pytest.approx(precision) and entry["recall"] == pytest.approx(recall)
        assert entry["f1"] == pytest.approx(f1) and entry["top_1_accuracy"] == pytest.approx(recall)
    assert per_class["cat"]["num_images"] == 4, "the existing keys stay"

    rows = read_csv(results / "misclassified.csv")
    wrong = sorted((Path(row[0]).relative_to(validation).as_posix(), row[1], row[2]) for row in rows[1:])
    assert wrong == [("cat/green cat.jpg", "cat", "dog"), ("dog/blue dog.jpg", "dog", "fox")]
    assert all(float(row[3]) > float(row[4]) for row in rows[1:]), "the predicted class scored higher"
    scores = [float(row[3]) for row in rows[1:]]
    assert scores == sorted(scores, reverse=True), "most confident mistake first"

    page = (results / "summary.html").read_text(encoding="utf-8")
    assert "2 of 9 validation images are misclassified" in page
    assert "cat taken for dog: 1 image" in page
    found = check_links(results)
    assert "../dataset/validation/cat/green%20cat.jpg" in found, "the picture of the mistake is shown"
    check_png(results / "confusion_matrix.png")


def test_precision_recall_f1_top5_and_unused_ids_over_constructed_predictions():
    """Metric plugins over hand-made predictions: 6 classes, id 1 unused (but predicted once), class f unseen."""
    from tlplugins.metrics import per_class, top5
    from tlplugins.metrics.confusion import confusion_matrix

    names = ("a", None, "b", "c", "d", "e", "f")
    # true ids and the output order of each image's scores, best first
    cases = [(0, [0, 2, 3, 4, 5, 6, 1]), (0, [2, 0, 3, 4, 5, 6, 1]), (2, [2, 0, 3, 4, 5, 6, 1]),
             (3, [1, 3, 0, 2, 4, 5, 6]), (4, [4, 0, 2, 3, 5, 6, 1]), (5, [0, 2, 3, 4, 6, 5, 1])]
    scores = np.zeros((len(cases), len(names)), dtype=np.float32)
    for row, (_, order) in enumerate(cases):
        scores[row, order] = np.linspace(1, 0.1, len(names))
    predictions = Predictions(scores=scores, label_ids=np.array([true for true, _ in cases]),
                              paths=tuple(f"{i}.jpg" for i in range(len(cases))), class_names=names)
    confusion = confusion_matrix(predictions)
    assert confusion.label_ids == (0, 1, 2, 3, 4, 5, 6)
    assert confusion.names[1] == "(unused id 1)" and confusion.total == 6 and confusion.correct == 3

    dataset = types.SimpleNamespace(labels={name: i for i, name in enumerate(names) if name})
    result = per_class.tl_evaluate(predictions=predictions, dataset=dataset)["per_class"]
    assert set(result) == {"a", "b", "c", "d", "e"}, "f has no validation images"
    assert result["a"] == {"top_1_accuracy": 0.5, "num_images": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert (result["b"]["precision"], result["b"]["recall"], result["b"]["f1"]) == pytest.approx((0.5, 1, 2 / 3))
    assert (result["c"]["precision"], result["c"]["recall"], result["c"]["f1"]) == (0, 0, 0), "undefined is 0"
    assert result["d"]["f1"] == 1.0 and result["e"]["recall"] == 0.0

    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    assert top5.tl_evaluate(predictions=predictions, reporter=reporter) == {"top_5_accuracy": 5 / 6}, \
        "e's image has it sixth"
    assert "Top-5 accuracy: 0.8333 (5 of 6 validation images)" in reporter.stream.getvalue()
    five = Predictions(scores=scores[:, :5], label_ids=np.array([0, 0, 2, 3, 4, 0]), paths=predictions.paths,
                       class_names=names[:5])
    assert top5.tl_evaluate(predictions=five, reporter=reporter) is None, "4 classes: no top-5"


def test_top_5_accuracy_with_more_than_five_classes_also_for_the_quantized_model(project):
    from tests.test_quantize import quantize_cli

    classes = ["cat", "dog", "fox", "owl", "yak", "emu", "gnu"]  # gnu has cat's colour
    dataset_of(project, classes)
    spy = Spy()
    _, reporter = run_with(project, spy)
    results = project.results()
    top5 = (spy.predictions[0].top_k(5) == spy.predictions[0].label_ids[:, None]).any(axis=1).mean()
    assert results["top_5_accuracy"] == pytest.approx(top5) and results["top_5_accuracy"] >= results["top_1_accuracy"]
    assert "Top-5 accuracy: " in reporter.stream.getvalue()
    page = (results_dir(project) / "summary.html").read_text(encoding="utf-8")
    assert "Top-5 accuracy" in page and "gnu taken for cat: 2 images" in page

    quantized = quantize_cli(project)
    assert quantized.exit_code == 0, quantized.output
    results = project.results()
    assert 0 <= results["quantized_top_5_accuracy"] <= 1
    assert set(results["quantized_per_class"]["cat"]) == {"top_1_accuracy", "num_images", "precision", "recall",
                                                          "f1"}


def test_a_trainer_that_reports_no_epochs_gets_a_placeholder_picture(project):
    class Silent:
        """Places the centroids itself and never tells the core about an epoch."""

        @hookimpl(tryfirst=True)
        def tl_train(self, model, dataset):
            centroids = [[c / 255 for c in COLOURS[i % len(COLOURS)]] for i in range(dataset.num_outputs)]
            return {"base": model, "centroids": centroids}

    result, reporter = run_with(project, Silent())
    results = results_dir(project)
    assert result.history == () and result.metrics["top_1_accuracy"] == 1.0
    assert read_csv(results / "history.csv") == [["epoch", "loss", "acc", "val_loss", "val_acc"]]
    check_png(results / "training_curves.png")
    page = (results / "summary.html").read_text(encoding="utf-8")
    assert "The trainer reported no epochs" in page and 'src="training_curves.png"' not in page
    check_links(results)
    assert not other_warnings(reporter)


def test_one_class(project):
    dataset_of(project, ["cat"])
    _, reporter = run_with(project)
    results = results_dir(project)
    assert json.loads((results / "confusion_matrix.json").read_text())["matrix"] == [[2]]
    assert project.results()["per_class"]["cat"]["f1"] == 1.0 and "top_5_accuracy" not in project.results()
    check_png(results / "confusion_matrix.png")
    check_png(results / "training_curves.png")
    check_links(results)
    assert not other_warnings(reporter)


def test_hundreds_of_classes_draw_the_most_confused_and_keep_every_class_in_the_json(project):
    classes = [f"class {i:03d}" for i in range(130)]
    dataset_of(project, classes, train=1, val=1)
    _, reporter = run_with(project, epochs=1)
    results = results_dir(project)
    matrix = json.loads((results / "confusion_matrix.json").read_text())
    assert matrix["classes"] == classes and "matrix" not in matrix, "130 x 130 numbers, nearly all 0: sparse"
    assert sum(count for _, _, count in matrix["cells"]) == 130 and len(matrix["cells"]) <= 130
    assert all(count > 0 for _, _, count in matrix["cells"])
    width, height = check_png(results / "confusion_matrix.png")
    assert width < 4000 and height < 4000, "the 60 most confused classes, legible, not 130 crammed"
    page = (results / "summary.html").read_text(encoding="utf-8")
    assert "With 130 classes, the picture shows the 60 classes with the most errors" in page
    assert page.count("<tr") > 130, "every class in the per-class table"
    assert "top_5_accuracy" in project.results()
    assert not other_warnings(reporter)


def test_awkward_class_names_are_escaped_in_the_summary_and_drawn(project):
    classes = ['<b>"tom" & jerry', "$5 bill", "日本"]
    dataset_of(project, classes)
    validation = project.root / "dataset" / "validation"
    (validation / classes[1] / "odd #1.jpg").write_bytes(tiny_jpeg(COLOURS[0]))
    _, reporter = run_with(project)
    results = results_dir(project)
    assert {p.name for p in results.iterdir()} == REPORTS | {"results.json", OWNED}
    assert not other_warnings(reporter), "the names draw (no mathtext for $)"
    page = (results / "summary.html").read_text(encoding="utf-8")
    assert '<b>"tom"' not in page and "&lt;b&gt;&quot;tom&quot; &amp; jerry" in page
    assert "$5 bill taken for &lt;b&gt;" in page
    found = check_links(results)
    assert any(unquote(link).endswith("$5 bill/odd #1.jpg") for link in found), found
    assert json.loads((results / "confusion_matrix.json").read_text())["classes"] == classes
    check_png(results / "confusion_matrix.png")


def test_a_picture_that_cannot_be_drawn_is_a_warning_and_the_run_succeeds(project, monkeypatch):
    from tlplugins.reports import figures

    def broken(predictions):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(figures, "confusion_figure", broken)
    _, reporter = run_with(project)
    results = results_dir(project)
    assert other_warnings(reporter) == ["confusion_matrix.png not drawn: RuntimeError: no fonts"]
    assert not (results / "confusion_matrix.png").exists() and (results / "confusion_matrix.json").exists()
    assert "confusion_matrix.png" not in check_links(results)


def test_the_summary_links_what_other_report_plugins_wrote(project):
    class Extra:
        @hookimpl
        def tl_write_reports(self, path):
            (path / "notes.txt").write_text("hello")
            return ["notes.txt"]

    run_with(project, Extra())
    assert "notes.txt" in check_links(results_dir(project))


def test_reports_of_a_failed_run_are_not_published(project, monkeypatch):
    from tlcore.outputs import StagedDir

    assert project.run().exit_code == 0
    results = results_dir(project)
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    (project.root / "dataset" / "validation" / "cat" / "green.jpg").write_bytes(tiny_jpeg(COLOURS[1]))

    def fails(self):
        raise OSError("disk full")

    monkeypatch.setattr(StagedDir, "publish", fails)  # after every report is staged, at the last moment
    with pytest.raises(OutputError, match="disk full"):
        run_with(project, epochs=3, tensorboard=True)
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before, "the previous reports are kept"


def tensorboard_scalars(folder):
    """``{run: {tag: [[step, value]]}}`` as TensorBoard's EventAccumulator reads them: in a separate process,
    told to use TensorBoard's TensorFlow stub (``tensorboard.compat.notf``), so no TensorFlow is needed."""
    probe = textwrap.dedent(f"""
        import json, sys, types
        sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")
        from pathlib import Path
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        runs = {{}}
        for run in sorted(p.name for p in Path({str(folder)!r}).iterdir()):
            accumulator = EventAccumulator(str(Path({str(folder)!r}) / run))
            accumulator.Reload()
            runs[run] = {{tag: [[event.step, event.value] for event in accumulator.Scalars(tag)]
                         for tag in accumulator.Tags()["scalars"]}}
        print(json.dumps(runs))
    """)
    result = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_tensorboard_logs_are_written_with_the_key_and_load_in_tensorboard(project):
    result, _ = run_with(project, epochs=3, tensorboard=True)
    results = results_dir(project)
    assert {p.name for p in results.iterdir()} == REPORTS | {"results.json", "tensorboard", OWNED}
    runs = tensorboard_scalars(results / "tensorboard")
    assert set(runs) == {"train", "validation"}
    assert set(runs["train"]) == set(runs["validation"]) == {"epoch_loss", "epoch_accuracy"}
    history = result.history
    assert runs["train"]["epoch_loss"] == [[e["epoch"], pytest.approx(e["loss"], rel=1e-6)] for e in history]
    assert runs["validation"]["epoch_accuracy"] == [[e["epoch"], pytest.approx(e["val_acc"])] for e in history]
    assert "tensorboard" in check_links(results)


def test_the_tensorboard_writer_needs_no_tensorflow(tmp_path):
    probe = ("import sys\nfrom pathlib import Path\nfrom tlplugins.reports.tensorboard import write_events\n"
             f"write_events([{{'epoch': 1, 'loss': 0.5, 'val_acc': 0.9}}], Path({str(tmp_path)!r}) / 'tb')\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch', 'keras')))")
    result = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert len(list((tmp_path / "tb").glob("*/events.out.tfevents.*"))) == 2


def test_the_tensorboard_key_without_the_package_is_an_error_before_training(project, monkeypatch):
    from tlplugins.reports import tensorboard

    monkeypatch.setattr(tensorboard, "tensorboard_installed", lambda: False)
    result = project.run(config=project.write(tensorboard=True))
    assert result.exit_code == 2
    assert "the tensorboard package, which is not installed" in one_line_error(result)
    assert "Epoch 1/" not in result.output and not results_dir(project).exists()


@pytest.mark.tensorflow
def test_a_keras_run_writes_the_same_reports(tmp_path):
    """The reports come from predictions: a real framework gets them all, TensorBoard logs included."""
    from tests.builders import colour_project
    from tests.conftest import run_tl

    result = run_tl("run", colour_project(tmp_path, epochs=2, seed=1, evaluate_result_dir="results", tensorboard=True))
    assert result.returncode == 0, result.stderr
    results = tmp_path / "results"
    assert f"Summary: {results / 'summary.html'}" in result.stdout
    assert {p.name for p in results.iterdir()} == REPORTS | {"results.json", "tensorboard", OWNED}
    for picture in ("confusion_matrix.png", "training_curves.png"):
        check_png(results / picture)
    matrix = json.loads((results / "confusion_matrix.json").read_text())
    assert matrix["classes"] == ["red", "green"] and sum(map(sum, matrix["matrix"])) == 2
    assert len(read_csv(results / "history.csv")) == 1 + 2
    assert [step for step, _ in tensorboard_scalars(results / "tensorboard")["validation"]["epoch_loss"]] == [1, 2]
    check_links(results)


def test_when_early_stopping_watches_a_hold_out_every_report_says_val_is_measured_on_it(project):
    from tlplugins.reports.figures import curves_figure

    result, reporter = run_with(project, epochs=3, early_stopping_patience=2, holdout_fraction=0.25, tensorboard=True)
    epochs = [line for line in reporter.stream.getvalue().splitlines() if line.startswith("Epoch ")]
    assert epochs and all(line.endswith("(val_* on the hold-out of 3 training images)") for line in epochs), epochs
    results = results_dir(project)
    summary = (results / "summary.html").read_text()
    assert "val_loss and val_acc are measured on the hold-out of training images early stopping watches" in summary
    assert "training and hold-out" in summary and "loss and accuracy on the training and hold-out" in summary
    assert set(tensorboard_scalars(results / "tensorboard")) == {"train", "holdout"}
    labels = [text.get_text() for axes in curves_figure(result.history, dict(result.metrics), "hold-out").axes
              for text in axes.get_legend().get_texts()]
    assert "hold-out (training images early stopping watches)" in labels and "validation" not in labels

    plain, reporter = run_with(project, epochs=2, tensorboard=True)
    assert "hold-out" not in reporter.stream.getvalue() and "hold-out" not in (results / "summary.html").read_text()
    assert set(tensorboard_scalars(results / "tensorboard")) == {"train", "validation"}
