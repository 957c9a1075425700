"""Indexing the ImageNet-folder dataset and labels.json, without TensorFlow."""

import io
import json

import pytest

from tests.conftest import one_line_error, touch_images
from tlcore.config import load_config
from tlcore.dataset import DatasetIndex, Split
from tlcore.errors import DatasetError
from tlcore.report import Reporter
from plugins.datasets.imagenet_folder import tl_load_dataset


def index(project, **changes):
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    dataset = tl_load_dataset(config=load_config(project.write(**changes)), reporter=reporter)
    return dataset, reporter


def labels_file(project):
    return project.root / "dataset" / "labels.json"


def fails(project, *fragments):
    if not project.config_path.exists():
        project.write()
    before = project.files()
    result = project.run()
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    for fragment in fragments:
        assert fragment in line, line
    assert project.files() == before
    return line


def test_index_uses_label_ids_not_folder_order(project):
    labels_file(project).write_text(json.dumps({"fox": 0, "dog": 1, "cat": 2}))
    dataset, _ = index(project)
    assert dict(dataset.labels) == {"fox": 0, "dog": 1, "cat": 2}
    assert dataset.class_names == ["fox", "dog", "cat"]
    by_folder = {path.parent.name: label for path, label in dataset.training.samples}
    assert by_folder == {"fox": 0, "dog": 1, "cat": 2}
    assert len(dataset.training) == 12 and len(dataset.validation) == 6


def test_ids_with_gaps_give_max_id_plus_one_outputs_and_a_warning(project):
    labels_file(project).write_text(json.dumps({"cat": 1, "dog": 2, "fox": 5}))
    dataset, reporter = index(project)
    assert dataset.num_outputs == 6
    assert dataset.unused_ids == [0, 3, 4]
    assert "output indices 0, 3, 4 unused" in reporter.err.getvalue()


def test_labels_entry_without_a_folder_is_a_warning(project):
    labels_file(project).write_text(json.dumps({"cat": 0, "dog": 1, "fox": 2, "owl": 3}))
    dataset, reporter = index(project)
    assert "have no training folder: owl" in reporter.err.getvalue()
    assert dataset.num_outputs == 4


def test_hidden_folders_and_files_are_ignored(project):
    training = project.root / "dataset" / "training"
    (training / ".ipynb_checkpoints").mkdir()
    (training / "cat" / ".DS_Store").write_text("x")
    (training / "cat" / ".hidden").mkdir()
    (training / "cat" / ".hidden" / "x.jpg").write_text("x")
    dataset, reporter = index(project)
    assert len(dataset.training) == 12
    assert reporter.err.getvalue() == ""


def test_non_image_files_are_skipped_with_a_summary(project):
    (project.root / "dataset" / "training" / "cat" / "Thumbs.db").write_text("x")
    (project.root / "dataset" / "training" / "dog" / "notes.txt").write_text("x")
    dataset, reporter = index(project)
    assert len(dataset.training) == 12
    assert "ignoring 2 non-image file(s)" in reporter.err.getvalue()


def test_image_suffixes_are_case_insensitive(project):
    touch_images(project.root / "dataset" / "training", ["cat"], per_class=2, suffix=".JPEG")
    dataset, _ = index(project)
    assert len(dataset.training) == 14


def test_images_in_nested_folders_belong_to_their_class(project):
    nested = project.root / "dataset" / "training" / "cat" / "2024"
    touch_images(nested, ["album"], per_class=2)
    dataset, _ = index(project)
    assert sum(1 for path, label in dataset.training.samples if "album" in str(path) and label == 0) == 2


def test_class_folder_not_in_labels(project):
    touch_images(project.root / "dataset" / "training", ["owl"])
    fails(project, 'class "owl"', "not in", "labels.json", "add it there or remove the folder")


def test_validation_class_not_in_labels(project):
    touch_images(project.root / "dataset" / "validation", ["owl"])
    fails(project, 'validation folder has class "owl"')


def test_empty_class_folder(project):
    (project.root / "dataset" / "training" / "owl").mkdir()
    labels_file(project).write_text(json.dumps({"cat": 0, "dog": 1, "fox": 2, "owl": 3}))
    fails(project, "owl has no images", "add .jpg images or remove the folder")


def test_training_folder_without_class_folders(project):
    (project.root / "dataset" / "empty").mkdir()
    project.write(dataset_training_dir="dataset/empty")
    fails(project, "has no class folders")


@pytest.mark.parametrize("text, message", [
    ("{}", "is empty"),
    ('["cat", "dog"]', "must hold a JSON object"),
    ('{"cat": 0, "dog": 0, "fox": 1}', '"cat" and "dog" both have id 0'),
    ('{"cat": -1, "dog": 0, "fox": 1}', 'id of "cat" is -1; ids must be 0 or more'),
    ('{"cat": "0", "dog": 1, "fox": 2}', "ids must be integers"),
    ('{"cat": 0.5, "dog": 1, "fox": 2}', "ids must be integers"),
    ('{"cat": true, "dog": 1, "fox": 2}', "ids must be integers"),
    ('{"cat": 0, "dog": 1,', "not valid JSON"),
])
def test_malformed_labels(project, text, message):
    labels_file(project).write_text(text)
    fails(project, message)


def test_dataset_index_refuses_inconsistent_data(tmp_path):
    split = Split("training", tmp_path, ((tmp_path / "a.jpg", 0),))
    with pytest.raises(DatasetError, match="share a label id"):
        DatasetIndex(labels={"a": 0, "b": 0}, training=split, validation=split)
    with pytest.raises(DatasetError, match="label ids .9. that no class has"):
        DatasetIndex(labels={"a": 0}, training=Split("training", tmp_path, ((tmp_path / "a.jpg", 9),)), validation=split)
    with pytest.raises(DatasetError, match="no classes"):
        DatasetIndex(labels={}, training=split, validation=split)
