"""Indexing the ImageNet-folder dataset and labels.json, without TensorFlow."""

import io
import json

import pytest

from tests.conftest import JPEG_SHELL, one_line_error, touch_images
from tlcore.config import load_config
from tlcore.dataset import DatasetIndex, Split
from tlcore.errors import DatasetError
from tlcore.report import Reporter
from tlplugins.datasets.imagenet_folder import tl_load_dataset


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


def put(project, relative, data):
    path = project.root / "dataset" / relative
    path.write_bytes(data)
    return path


PNG_HEAD = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file (0 bytes)"),
    (JPEG_SHELL[:-6], "truncated JPEG"),
    (b"hello, I am text", "not an image"),
    (b"\xff\xd8\xff\xe0\x00\x04ab\x00\x00garbage\xff\xd9", "damaged JPEG"),
    (PNG_HEAD, "truncated PNG"),
    (b"GIF89a" + b"\x00" * 26, "truncated GIF"),
    (b"BM" + (5000).to_bytes(4, "little") + b"\x00" * 30, "truncated BMP (36 of 5000 bytes)"),
])
def test_unusable_images_are_skipped_with_a_summary_naming_them(project, data, reason):
    put(project, "training/cat/broken.jpg", data)
    dataset, reporter = index(project)
    assert len(dataset.training) == 12
    warning = reporter.err.getvalue()
    assert "training: skipped 1 unusable image(s)" in warning and f"broken.jpg ({reason}" in warning
    assert [(path.endswith("broken.jpg"), problem.startswith(reason)) for path, problem in dataset.training.skipped] \
        == [(True, True)]


def test_bad_images_error_mode_stops_the_run(project):
    put(project, "training/dog/zero.jpg", b"")
    project.write(bad_images="error")
    fails(project, "zero.jpg: empty file (0 bytes)", '"bad_images": "skip"')
    project.write(bad_images="ignore")
    assert '"bad_images" is "ignore"; use one of "skip", "error"' in one_line_error(project.run())


def test_other_formats_named_jpg_are_used(project):
    put(project, "training/cat/really_a.png.jpg", PNG_HEAD + PNG_END)
    put(project, "training/cat/really_a.gif.jpg", b"GIF89a" + b"\x00" * 26 + b";")
    dataset, reporter = index(project)
    assert len(dataset.training) == 14 and reporter.err.getvalue() == ""


def test_webp_is_an_image(project):
    put(project, "training/cat/photo.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20)
    dataset, reporter = index(project)
    assert project.root / "dataset/training/cat/photo.webp" in [path for path, _ in dataset.training.samples]
    assert reporter.err.getvalue() == ""


def test_a_class_whose_images_are_all_unusable_is_an_error(project):
    for image in (project.root / "dataset" / "training" / "fox").iterdir():
        image.write_bytes(b"")
    fails(project, 'training class "fox" has no usable images')


def test_validation_class_without_training_images_is_a_warning(project):
    touch_images(project.root / "dataset" / "validation", ["owl"])
    labels_file(project).write_text(json.dumps({"cat": 0, "dog": 1, "fox": 2, "owl": 3}))
    dataset, reporter = index(project)
    assert "validation class(es) with no training images: owl" in reporter.err.getvalue()
    assert len(dataset.validation) == 9


def test_skipped_images_are_recorded_beside_the_model(project):
    put(project, "validation/dog/empty.jpg", b"")
    assert project.run().exit_code == 0
    record = json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
    assert record["skipped_images"] == [
        {"path": str(project.root / "dataset/validation/dog/empty.jpg"), "reason": "empty file (0 bytes)"}
    ]


def test_jpeg_marker_walk_survives_odd_but_valid_and_damaged_headers(project):
    shell = bytearray(JPEG_SHELL)
    put(project, "training/cat/fill_bytes.jpg", bytes(shell[:2] + b"\xff\xff" + shell[2:]))
    put(project, "training/cat/zero_length.jpg", b"\xff\xd8\xff\xe0\x00\x00abc\xff\xd9")
    put(project, "training/cat/short_segment.jpg", b"\xff\xd8\xff\xe0\x00\x40ab\xff\xd9")
    dataset, reporter = index(project)
    names = {path.name for path, _ in dataset.training.samples}
    assert "fill_bytes.jpg" in names
    assert {p.rsplit("/", 1)[-1]: r for p, r in dataset.training.skipped} == {
        "zero_length.jpg": "damaged JPEG (bad marker structure)",
        "short_segment.jpg": "damaged JPEG (bad marker structure)",
    }


def test_a_fifo_named_like_an_image_does_not_block_indexing(project):
    import os

    os.mkfifo(project.root / "dataset" / "training" / "cat" / "pipe.jpg")
    dataset, reporter = index(project)
    assert "pipe.jpg (not a regular file)" in reporter.err.getvalue()


def test_huge_label_ids_are_refused(project):
    labels_file(project).write_text(json.dumps({"cat": 0, "dog": 1, "fox": 10**12}))
    fails(project, 'id of "fox" is 1000000000000; ids must be at most 65535')


def test_symbolic_link_class_folders_are_named_not_followed(project, tmp_path):
    import os

    elsewhere = tmp_path / "elsewhere" / "owl"
    touch_images(elsewhere.parent, ["owl"])
    os.symlink(elsewhere, project.root / "dataset" / "training" / "owl")
    dataset, reporter = index(project)
    assert "ignoring 1 symbolic link(s), which are not followed: owl" in reporter.err.getvalue()
    assert len(dataset.training) == 12


def test_symbolic_links_inside_class_folders_are_named_never_silently_used_or_dropped(project, tmp_path):
    import os

    elsewhere = tmp_path / "elsewhere"
    touch_images(elsewhere, ["more"], per_class=2)
    cat = project.root / "dataset" / "training" / "cat"
    os.symlink(elsewhere / "more" / "more_0.jpg", cat / "linked.jpg")
    os.symlink(elsewhere / "more", cat / "linked_folder")
    dataset, reporter = index(project)
    warning = reporter.err.getvalue()
    assert "training: ignoring 2 symbolic link(s), which are not followed: " in warning
    assert str(cat / "linked.jpg") in warning and str(cat / "linked_folder") in warning
    assert len(dataset.training) == 12, "neither the linked file nor the linked folder's images are used"


def test_phone_photos_with_data_after_the_image_are_used(project):
    """Motion photos, depth and gain maps: phones append data after the JPEG's end marker."""
    import io

    from PIL import Image

    from tlcore.images import decode

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, "JPEG")
    appended = buffer.getvalue() + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 1000
    path = put(project, "training/cat/motion_photo.jpg", appended)
    dataset, reporter = index(project)
    assert path in [p for p, _ in dataset.training.samples] and reporter.err.getvalue() == ""
    assert abs(int(decode(str(path), 16)[0, 0, 0]) - 200) < 8, "the image decodes; the appended data is ignored"
    truncated = put(project, "training/cat/truncated.jpg", buffer.getvalue()[:-40])
    dataset, reporter = index(project)
    assert "truncated.jpg (truncated JPEG" in reporter.err.getvalue()
    assert truncated not in [p for p, _ in dataset.training.samples]


def test_an_unreadable_folder_is_an_error_not_an_empty_class(project, monkeypatch):
    import os

    from tlplugins.datasets import imagenet_folder

    real_walk = os.walk

    def walk(top, onerror=None, **kwargs):
        if top.endswith("dog"):
            onerror(PermissionError(13, "Permission denied", top))
        yield from real_walk(top, onerror=onerror, **kwargs)

    monkeypatch.setattr(imagenet_folder.os, "walk", walk)
    with pytest.raises(DatasetError, match=r"cannot read the folder .*dog: Permission denied; check its permissions"):
        index(project)


def test_validating_on_the_training_folder_is_a_warning(project):
    _, reporter = index(project, dataset_validation_dir="dataset/training")
    assert "the validation folder is the training folder" in reporter.err.getvalue()


def test_a_folder_name_that_differs_from_its_key_only_in_unicode_normalisation_is_named_as_such(tmp_path):
    """macOS may store "poisson_é" decomposed (NFD) while labels.json has it composed (NFC): they look identical."""
    import unicodedata

    from tests.conftest import Project, touch_images, write_labels

    nfc, nfd = unicodedata.normalize("NFC", "poisson_é"), unicodedata.normalize("NFD", "poisson_é")
    for split in ("training", "validation"):
        touch_images(tmp_path / "dataset" / split, [nfd, "chat"], per_class=2)
    write_labels(tmp_path / "dataset", {nfc: 0, "chat": 1})
    line = one_line_error(Project(tmp_path).run())
    assert "which differs only in Unicode normalisation (NFD folder name, NFC key)" in line


def test_classes_that_differ_only_in_case_or_normalisation_are_a_warning_naming_both(tmp_path):
    import unicodedata

    from tests.conftest import Project, touch_images, write_labels

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    classes = [nfc, nfd, "fish", "Fish"]
    for split in ("training", "validation"):
        touch_images(tmp_path / "dataset" / split, classes, per_class=2)
    write_labels(tmp_path / "dataset", {name: i for i, name in enumerate(classes)})
    result = Project(tmp_path).run()
    assert result.exit_code == 0, result.output
    assert 'the classes "Fish" and "fish", which differ only in case' in result.output
    assert f'the classes "{nfd}" and "{nfc}", which differ only in Unicode normalisation' in result.output or \
        f'the classes "{nfc}" and "{nfd}", which differ only in Unicode normalisation' in result.output
