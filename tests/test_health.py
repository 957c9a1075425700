"""The data health check (tlcore/health.py) over synthetic features, and its section of summary.html."""

import csv
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from tlcore import health
from tlcore.health import Finding, HealthReport

CLASSES = ["cat", "dog", "fox", "owl"]


def clustered(rng, count, classes=4, dim=64, spread=1.5):
    """Features like pooled ReLU features: all positive, one cluster per class, images of a class spread
    (different photos of one class are related but far from identical: the most similar two score about 0.7,
    like the most similar different photos of examples/photos)."""
    centres = rng.gamma(2.0, 1.0, (classes, dim))
    labels = rng.integers(0, classes, count)
    features = np.maximum(centres[labels] + rng.normal(0, spread, (count, dim)), 0)
    return features.astype(np.float32), labels


def dataset(seed=0, training=300, validation=100, dim=64):
    rng = np.random.default_rng(seed)
    features, labels = clustered(rng, training + validation, dim=dim)
    return ({"training": features[:training], "validation": features[training:]},
            {"training": labels[:training], "validation": labels[training:]},
            {"training": [f"/data/training/{CLASSES[label]}/{i}.jpg" for i, label in enumerate(labels[:training])],
             "validation": [f"/data/validation/{CLASSES[label]}/{i}.jpg"
                            for i, label in enumerate(labels[training:])]},
            {"training": [f"t{i}" for i in range(training)], "validation": [f"v{i}" for i in range(validation)]})


def near_copy(rng, row, noise=0.05):
    """The same photo re-encoded: its features change a little."""
    return np.maximum(row + rng.normal(0, noise * row.std(), row.shape), 0).astype(np.float32)


def pairs(findings, kind=None):
    return {tuple(sorted(f.paths)) for f in findings if kind is None or f.kind == kind}


def test_planted_duplicates_are_found_and_sorted_by_kind():
    features, labels, paths, digests = dataset()
    rng = np.random.default_rng(1)
    training, validation = features["training"], features["validation"]
    # validation 0 is training 0 re-encoded, same label: across the splits
    validation[0] = near_copy(rng, training[0])
    labels["validation"][0] = labels["training"][0]
    # training 2 is training 1 re-encoded, same label: within training
    training[2] = near_copy(rng, training[1])
    labels["training"][2] = labels["training"][1]
    # training 4 is training 3, another label: conflicting
    training[4] = near_copy(rng, training[3])
    labels["training"][4] = (labels["training"][3] + 1) % 4
    # validation 5 and training 10 are the same file (its features equal), same label
    validation[5] = training[10]
    labels["validation"][5] = labels["training"][10]
    digests["validation"][5] = digests["training"][10]
    paths = {split: [f"/data/{split}/{CLASSES[label]}/{i}.jpg" for i, label in enumerate(labels[split])]
             for split in labels}
    stats = {}
    found = health.find_duplicates(features, labels, paths, digests, CLASSES, stats=stats)
    t, v = paths["training"], paths["validation"]
    assert pairs(found, "duplicate_across_splits") == {tuple(sorted((t[0], v[0]))), tuple(sorted((t[10], v[5])))}
    assert pairs(found, "duplicate_within_split") == {tuple(sorted((t[1], t[2])))}
    assert pairs(found, "duplicate_conflicting_labels") == {tuple(sorted((t[3], t[4])))}
    assert len(found) == 4, "different photos of one class are not duplicates"
    identical = next(f for f in found if v[5] in f.paths)
    assert identical.score == 1.0 and "identical files" in identical.detail and identical.splits == ("training",
                                                                                                      "validation")
    conflicting = next(f for f in found if f.kind == "duplicate_conflicting_labels")
    assert set(conflicting.labels) == {CLASSES[labels["training"][3]], CLASSES[labels["training"][4]]}
    assert 0.9 <= conflicting.score < 1
    assert [f.kind for f in found] == sorted((f.kind for f in found), key=health.KINDS.index)
    assert stats["images"] == {"training": 300, "validation": 100} and 0 < stats["pairs_verified"] < 400 * 399 / 2


def test_identical_files_are_found_by_digest_even_without_usable_features(tmp_path):
    """Two files with the same bytes are duplicates whatever their features (zeros: not decoded)."""
    files = []
    for index, colour in enumerate([(200, 10, 10), (10, 200, 10), (200, 10, 10)]):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (8, 8), colour).save(path)
        files.append(str(path))
    features = {"training": np.zeros((2, 16), np.float32), "validation": np.zeros((1, 16), np.float32)}
    labels = {"training": np.array([0, 1]), "validation": np.array([0])}
    paths = {"training": files[:2], "validation": files[2:]}
    found = health.find_duplicates(features, labels, paths, None, ["red", "green"])
    assert [(f.kind, f.paths) for f in found] == [("duplicate_across_splits", (files[0], files[2]))]
    assert health.file_digests([files[0], tmp_path / "missing.png"])[1] == ""


def test_a_group_of_copies_is_reported_as_a_spanning_tree_keeping_each_kind():
    """Five copies of one photo (k images: k - 1 findings, not k(k-1)/2), one in validation and one under
    another label: both problems stay visible."""
    features, labels, paths, digests = dataset(seed=3)
    rng = np.random.default_rng(2)
    photo = features["training"][0]
    for row in (1, 2, 3):
        features["training"][row] = near_copy(rng, photo, 0.03)
        labels["training"][row] = labels["training"][0]
    labels["training"][3] = (labels["training"][0] + 1) % 4
    features["validation"][0] = near_copy(rng, photo, 0.03)
    labels["validation"][0] = labels["training"][0]
    found = [f for f in health.find_duplicates(features, labels, paths, digests, CLASSES)
             if paths["training"][0] in f.paths or any(p in f.paths for p in paths["training"][1:4])
             or paths["validation"][0] in f.paths]
    assert len(found) == 4
    assert sorted(f.kind for f in found) == ["duplicate_across_splits", "duplicate_conflicting_labels",
                                             "duplicate_within_split", "duplicate_within_split"]
    report = HealthReport(found)
    assert "data check: 1 validation image is also in training" in report.warning_lines()[0]


def test_clean_data_has_no_duplicates_nor_label_issues():
    features, labels, paths, digests = dataset(seed=5)
    assert health.find_duplicates(features, labels, paths, digests, CLASSES) == []
    scores = oof_like(labels["training"], 4, np.random.default_rng(5))
    assert len(health.find_label_issues(scores, labels["training"], paths["training"], CLASSES)) <= 3


def oof_like(labels, classes, rng, right=0.9):
    """Out-of-fold probabilities of a good classifier: most of the mass on the label, some doubt."""
    logits = rng.normal(0, 1, (len(labels), classes))
    logits[np.arange(len(labels)), labels] += 4
    scores = np.exp(logits)
    return scores / scores.sum(axis=1, keepdims=True)


def test_planted_label_flips_are_found_first_and_only_confident_ones():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, 500)
    scores = oof_like(truth, 4, rng)
    given = truth.copy()
    flipped = [3, 50, 200, 333, 499]
    for row in flipped:  # the model that did not see them is sure of their true class
        given[row] = (truth[row] + 1 + row % 3) % 4
        scores[row] = 0.02
        scores[row, truth[row]] = 0.94
    # an image the model doubts (its label at 0.45, another class at 0.5): not a confident disagreement
    scores[10] = [0.45, 0.5, 0.03, 0.02]
    given[10] = 0
    paths = [f"/data/training/{i}.jpg" for i in range(500)]
    found = health.find_label_issues(scores, given, paths, CLASSES)
    assert {f.paths[0] for f in found[:5]} == {paths[row] for row in flipped}, "the flips first"
    assert len(found) <= 8 and paths[10] not in {f.paths[0] for f in found[:5]}
    first = found[0]
    row = paths.index(first.paths[0])
    assert first.kind == "likely_mislabelled" and first.splits == ("training",)
    assert first.labels == (CLASSES[given[row]], CLASSES[truth[row]])
    assert [f.score for f in found] == sorted((f.score for f in found), reverse=True)
    assert len(health.find_label_issues(scores, given, paths, CLASSES, max_findings=2)) == 2


def test_label_issues_skip_unscored_rows_and_need_confidence():
    """Thresholds: a's images average 0.65 on a, b's 0.44 on b (the unscored row left out)."""
    scores = np.array([[0.9, 0.1], [0.95, 0.05], [0.1, 0.9], [0.92, 0.08], [0.2, 0.8], [np.nan, np.nan],
                       [0.6, 0.4]])
    labels = np.array([0, 0, 0, 1, 1, 1, 0])
    found = health.find_label_issues(scores, labels, [f"{i}.jpg" for i in range(7)], ["a", "b"])
    assert [(f.paths[0], f.labels) for f in found] == [("3.jpg", ("b", "a")), ("2.jpg", ("a", "b"))], \
        "6.jpg: below a's threshold, but b is not more likely"
    assert [round(f.score, 2) for f in found] == [0.84, 0.8]


def test_class_findings_report_thin_classes_and_imbalance():
    training = {"cat": 200, "dog": 15, "fox": 9, "owl": 0}
    validation = {"cat": 40, "dog": 1, "fox": 5, "owl": 3}
    found = health.class_findings(training, validation)
    few = {f.labels[0]: f for f in found if f.kind == "few_images"}
    assert set(few) == {"dog", "fox", "owl"}
    assert few["dog"].splits == ("validation",) and few["fox"].splits == ("training",) and few["owl"].score == 0
    imbalance = [f for f in found if f.kind == "imbalance"]
    assert len(imbalance) == 1 and imbalance[0].labels == ("cat", "fox") and imbalance[0].score == pytest.approx(200 / 9)
    assert health.class_findings({"a": 50, "b": 30}, {"a": 10, "b": 10}) == []


def test_the_csv_and_json_list_every_finding_and_neutralise_formulas(tmp_path):
    findings = [
        Finding("duplicate_across_splits", ("=HYPERLINK(\"http://x\")", "+1.jpg"), ("training", "validation"),
                ("@cat", "-dog"), "\tnear-identical", 0.97),
        Finding("few_images", (), ("training",), ("\rowl",), "3 training images", 3.0),
    ]
    report = HealthReport(findings, {"images": {"training": 2, "validation": 1}, "pairs_verified": 1})
    assert report.write(tmp_path) == ["data_health.csv", "data_health.json"]
    with open(tmp_path / "data_health.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(health.CSV_COLUMNS)
    assert rows[1] == ["duplicate_across_splits", "'=HYPERLINK(\"http://x\")", "'+1.jpg", "training", "validation",
                       "'@cat", "'-dog", "0.9700", "'\tnear-identical"]
    assert rows[2][:3] == ["few_images", "", ""] and rows[2][5] == "'\rowl"
    data = json.loads((tmp_path / "data_health.json").read_text())
    assert data["checked"]["pairs_verified"] == 1
    assert data["findings"][0]["paths"] == ["=HYPERLINK(\"http://x\")", "+1.jpg"], "the JSON keeps the text"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary files left"


def test_warning_lines_say_one_line_per_kind_with_counts():
    findings = [Finding("duplicate_across_splits", (f"t{i}", f"v{i}"), ("training", "validation"), ("a", "a"), "", 1)
                for i in range(3)]
    findings += [Finding("likely_mislabelled", ("t9",), ("training",), ("a", "b"), "", 0.8)] * 2
    findings += [Finding("few_images", (), ("training",), ("owl",), "", 3)]
    lines = HealthReport(findings).warning_lines()
    assert len(lines) == 3 and all(line.startswith("data check: ") and "data_health.csv" in line for line in lines)
    assert "3 validation images are also in training" in lines[0]
    assert "2 training images may be labelled wrong" in lines[1] and "1 class has too few images" in lines[2]
    assert HealthReport([]).warning_lines() == []


def test_duplicates_of_50k_images_verify_far_fewer_pairs_than_all():
    """Scaling: 50,000 random 256-dim features (LSH, not all 1.25e9 pairs); planted near-copies still found."""
    rng = np.random.default_rng(11)
    count = 50_000
    features = rng.standard_normal((count, 256)).astype(np.float32)
    planted = rng.choice(40_000, 20, replace=False)
    features[40_000:40_020] = features[planted] + rng.normal(0, 0.15, (20, 256)).astype(np.float32)
    split = {"training": features[:40_000], "validation": features[40_000:]}
    labels = {"training": np.zeros(40_000, np.int64), "validation": np.zeros(10_000, np.int64)}
    paths = {name: [f"{name}/{i}.jpg" for i in range(len(values))] for name, values in split.items()}
    digests = {name: [f"{name}{i}" for i in range(len(values))] for name, values in split.items()}
    stats = {}
    found = health.find_duplicates(split, labels, paths, digests, ["a"], stats=stats)
    assert pairs(found) == {(f"training/{row}.jpg", f"validation/{i}.jpg") for i, row in enumerate(planted)}
    assert stats["pairs_verified"] < count * count / 2 / 200, stats


def test_the_check_runs_every_part_and_imports_no_framework():
    features, labels, paths, digests = dataset(seed=9)
    scores = oof_like(labels["training"], 4, np.random.default_rng(9))
    report = health.check_health(features, labels, paths, CLASSES, digests=digests, oof_scores=scores)
    assert report.checked["images"] == {"training": 300, "validation": 100} and report.checked["label_check"]
    assert report.checked["seconds"] >= 0 and report.checked["pairs_verified"] > 0
    probe = ("import sys, tlcore.health\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch', 'keras', 'numpy')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def dataset_index(root):
    """A two-class dataset of tiny images (names with spaces), as a DatasetIndex."""
    from tlcore.dataset import DatasetIndex, Split

    samples = {}
    for split in ("training", "validation"):
        samples[split] = []
        for label, name in enumerate(["cat", "dog"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                path = folder / f"{name} {i}.jpg"
                Image.new("RGB", (8, 8), (200 * label, 50, 50)).save(path)
                samples[split].append((path, label))
    return DatasetIndex({"cat": 0, "dog": 1}, Split("training", root / "training", tuple(samples["training"])),
                        Split("validation", root / "validation", tuple(samples["validation"])))


def summary_page(tmp_path, index, health_report):
    """summary.html of constructed predictions over ``index`` (no framework), with ``health_report``."""
    from tlplugins.reports import summary
    from tlcore.evaluation import Predictions

    predictions = Predictions(scores=np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]], np.float32),
                              label_ids=np.array([0, 0, 1, 1]), paths=tuple(index.validation.paths),
                              class_names=("cat", "dog"))
    results = tmp_path / "results"
    results.mkdir(parents=True)
    config = types.SimpleNamespace(evaluate_result_dir=results, framework="fake", config_file=tmp_path / "c.json",
                                   saved_model_dir=tmp_path / "model", holdout_fraction=0,
                                   early_stopping_patience=0)
    if health_report is not None:
        health_report.write(results)
    try:
        written = summary.tl_write_reports(predictions=predictions, metrics={"top_1_accuracy": 1.0}, history=[],
                                           dataset=index, path=results, config=config, health=health_report)
    except AttributeError as error:  # a configuration attribute the page reads that this stand-in lacks
        pytest.fail(f"the stand-in configuration needs {error}")
    assert written == ["summary.html"]
    return (results / "summary.html").read_text(encoding="utf-8"), results


def test_the_summary_shows_the_data_health_with_pictures_of_both_duplicates(tmp_path):
    from tlplugins.reports import summary

    index = dataset_index(tmp_path / "dataset")
    page, _ = summary_page(tmp_path / "none", index, None)
    assert "Data health" not in page and "data_health.csv" not in page, "no check, no section"

    placeholder = HealthReport()
    training, validation = index.training.paths, index.validation.paths
    findings = [Finding("duplicate_across_splits", (training[0], validation[0]), ("training", "validation"),
                        ("cat", "cat"), "near-identical images (cosine similarity 0.970) in training and validation",
                        0.97)]
    findings += [Finding("likely_mislabelled", (training[2],), ("training",), ("<dog>", "cat"), "labelled dog",
                         0.9 - i / 100) for i in range(summary.MAX_LISTED_FINDINGS + 5)]
    findings += [Finding("few_images", (), ("training", "validation"), ("dog",), "2 training and 2 validation", 2)]
    placeholder.findings[:] = findings
    placeholder.checked.update(images={"training": 4, "validation": 4}, pairs_verified=6)
    page, results = summary_page(tmp_path / "some", index, placeholder)
    section = page[page.index('<h2 id="data-health">'):page.index("<h2>Files</h2>")]
    assert "4 training and 4 validation images" in section
    assert "1 validation image is also in training" in section and "25 training images may be labelled wrong" in section
    assert f"first {summary.MAX_LISTED_FINDINGS} findings of each kind" in section
    assert section.count("likely mislabelled") == summary.MAX_LISTED_FINDINGS, "capped"
    assert "&lt;dog&gt;" in section and "<dog>" not in section
    sources = set(re.findall(r'src="([^"]*)"', section))
    assert {quote(Path(os.path.relpath(p, results)).as_posix()) for p in (training[0], validation[0])} <= sources, \
        "both images of the duplicate pair"
    assert 'href="data_health.csv"' in section
    files = page[page.index("<h2>Files</h2>"):]
    assert "data_health.csv" in files and "data_health.json" in files and "another report plugin" not in files
    assert '<a href="#data-health">' in page

    clean, _ = summary_page(tmp_path / "clean", index, HealthReport([], {"images": {"training": 4, "validation": 4}}))
    assert "No problems found." in clean and "no problems found" in clean
