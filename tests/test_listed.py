"""Datasets listed in a CSV or JSON Lines file (plugins/datasets/listed.py): read, checked row by row, trained."""

import json
import os

import pytest

from tests.conftest import one_line_error, tiny_jpeg


@pytest.fixture
def flat(tmp_path):
    """A flat folder of images (images/<n>.jpg) and the project around it, as labelling tools export them."""
    images = tmp_path / "images"
    images.mkdir()
    colours = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}
    rows = []
    for index in range(12):
        name = list(colours)[index % 3]
        (images / f"{index}.jpg").write_bytes(tiny_jpeg(colours[name]))
        rows.append((f"images/{index}.jpg", name, "validation" if index >= 9 else "training"))
    return tmp_path, rows


def write_csv(path, rows, header=("path", "label", "split")):
    lines = [",".join(header)] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def configure(project, listing, validation=None, **values):
    project.values.update({"dataset_training_dir": str(listing), "dataset_validation_dir": str(validation or listing),
                           **values})
    return project.write()


def test_one_csv_with_a_split_column_trains_with_ids_in_sorted_order(project, flat):
    root, rows = flat
    listing = write_csv(root / "labels.csv", rows)
    result = project.run(config=configure(project, listing))
    assert result.exit_code == 0, result.output
    assert "Dataset: 9 training and 3 validation images, 3 classes, listed in labels.csv (no labels.json: class " \
           "ids in sorted order)" in result.output
    assert json.loads((project.root / "out" / "saved_model" / "labels.json").read_text()) == \
        {"cat": 0, "dog": 1, "fox": 2}
    assert project.results()["num_images"] == 3


def test_two_files_csv_and_json_lines_with_their_own_column_names(project, flat):
    root, rows = flat
    training = write_csv(root / "train.csv", [(p, label) for p, label, split in rows if split == "training"],
                         header=("file", "class"))
    validation = root / "val.jsonl"
    validation.write_text("".join(json.dumps({"file": p, "class": label}) + "\n"
                                  for p, label, split in rows if split == "validation"))
    (root / "labels.json").write_text(json.dumps({"fox": 0, "dog": 1, "cat": 2}))
    result = project.run(config=configure(project, training, validation, path_column="file", label_column="class"))
    assert result.exit_code == 0, result.output
    assert "listed in train.csv and val.jsonl (labels from" in result.output
    assert json.loads((project.root / "out" / "saved_model" / "labels.json").read_text())["fox"] == 0


def damage(root, rows, how):
    """The listing with one problem; returns (listing path, the expected error's words)."""
    listing = root / "labels.csv"
    rows = list(rows)
    if how == "missing file":
        rows[4] = ("images/nothing.jpg", "dog", "training")
        expected = "labels.csv row 6: {root}/images/nothing.jpg does not exist; correct the path"
    elif how == "symbolic link":
        os.symlink(root / "images" / "0.jpg", root / "images" / "link.jpg")
        rows[4] = ("images/link.jpg", "dog", "training")
        expected = "labels.csv row 6: {root}/images/link.jpg is a symbolic link, which tl does not follow"
    elif how == "duplicate row":
        rows.append(rows[1])
        expected = "labels.csv row 14 lists images/1.jpg again (labels.csv row 3 lists it already); remove one row"
    elif how == "two labels":
        rows.append(("images/1.jpg", "cat", "training"))
        expected = 'labels.csv row 14 lists images/1.jpg as "cat", and labels.csv row 3 as "dog"; an image has one class'
    elif how == "bad split":
        rows[2] = (rows[2][0], rows[2][1], "test")
        expected = 'labels.csv row 4: "split" is "test"; use training or validation'
    elif how == "no label":
        rows[2] = (rows[2][0], "", "training")
        expected = 'labels.csv row 4: no class name in "label"; give each image its class'
    else:
        raise AssertionError(how)
    write_csv(listing, rows)
    return listing, expected.format(root=root)


@pytest.mark.parametrize("how", ["missing file", "symbolic link", "duplicate row", "two labels", "bad split",
                                 "no label"])
def test_a_bad_row_is_one_line_naming_the_file_and_row(project, flat, how):
    root, rows = flat
    listing, expected = damage(root, rows, how)
    result = project.run(config=configure(project, listing))
    assert result.exit_code == 2
    assert expected in one_line_error(result)
    assert not (project.root / "out").exists(), "nothing written"


@pytest.mark.parametrize("content, expected", [
    ("file,label\nimages/0.jpg,cat\n", 'labels.csv has no column "path" (its columns: file, label); name the columns'),
    ("path,label\nimages/0.jpg,cat\n", 'labels.csv row 2: no "split"; both dataset keys name labels.csv, so every row'),
    ("path,label,split\nimages/0.jpg,cat,training,extra\n", "labels.csv line 2: more values than the 3 columns"),
])
def test_a_listing_without_what_it_needs_says_what_to_add(project, flat, content, expected):
    root, _ = flat
    (root / "labels.csv").write_text(content)
    result = project.run(config=configure(project, root / "labels.csv"))
    assert result.exit_code == 2 and expected in one_line_error(result)


def test_a_class_unknown_to_labels_json_and_a_class_not_trained_are_named(project, flat):
    root, rows = flat
    (root / "labels.json").write_text(json.dumps({"cat": 0, "dog": 1}))
    result = project.run(config=configure(project, write_csv(root / "labels.csv", rows)))
    assert result.exit_code == 2
    assert 'labels.csv row 4: class "fox" is not in' in one_line_error(result)

    (root / "labels.json").unlink()
    only_validation = [row for row in rows if not (row[1] == "fox" and row[2] == "training")]
    result = project.run(config=configure(project, write_csv(root / "labels.csv", only_validation)))
    assert result.exit_code == 0, result.output
    assert "validation class(es) with no training images: fox; the model cannot learn them" in result.output


def test_an_unusable_image_is_skipped_with_a_warning_or_stops_the_run(project, flat):
    root, rows = flat
    (root / "images" / "5.jpg").write_bytes(b"not an image")
    listing = write_csv(root / "labels.csv", rows)
    result = project.run(config=configure(project, listing))
    assert result.exit_code == 0, result.output
    assert f"training: skipped 1 unusable image(s): {root}/images/5.jpg" in result.output
    result = project.run(config=configure(project, listing, bad_images="error"))
    assert result.exit_code == 2 and f"labels.csv row 7: {root}/images/5.jpg:" in one_line_error(result)


def test_the_format_can_be_forced_and_a_folder_loader_refuses_a_file(project, flat):
    root, rows = flat
    listing = write_csv(root / "labels.txt", rows)
    result = project.run(config=configure(project, listing))
    assert result.exit_code == 2
    assert '"dataset_training_dir" is the file' in one_line_error(result)
    result = project.run(config=configure(project, listing, dataset_format="csv"))
    assert result.exit_code == 0, result.output


def test_the_listing_loader_is_listed_like_the_folder_loader():
    from click.testing import CliRunner

    from tlcli.main import main

    result = CliRunner().invoke(main, ["plugins", "list", "--json"])
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.output)["plugins"]}
    assert "tl_load_dataset" in plugins["datasets.listed"]["hooks"]
    assert {key["name"] for key in plugins["datasets.listed"]["config_keys"]} >= {"path_column", "label_column"}


def test_tl_init_on_a_listing_with_a_split_column_writes_a_configuration_that_runs(flat, monkeypatch):
    from tests.test_commands import invoke

    root, rows = flat
    write_csv(root / "labels.csv", rows)
    monkeypatch.chdir(root)
    result = invoke("init", "labels.csv")
    assert result.exit_code == 0, result.output
    written = json.loads((root / "configuration.json").read_text())
    assert written["dataset_training_dir"] == written["dataset_validation_dir"] == "labels.csv"
    assert "evaluate_label_file" not in written and "ids in sorted order" in result.output
    result = invoke("run", "--set", "framework=fake", "--set", "weights=null", "--set", "epochs=1",
                    "-p", "tests.fake_framework")
    assert result.exit_code == 0, result.output


def test_tl_init_splits_a_listing_without_a_split_column(flat, monkeypatch, tmp_path):
    from tests.test_commands import invoke

    root, rows = flat
    write_csv(root / "labels.csv", [(path, label) for path, label, _ in rows], header=("path", "label"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke("init", str(root / "labels.csv"))
    assert result.exit_code == 2 and '--split 0.2` to set a fifth of each class aside' in one_line_error(result)
    result = invoke("init", str(root / "labels.csv"), "--split", "0.25")
    assert result.exit_code == 0, result.output
    training = (work / "dataset" / "training.csv").read_text().splitlines()
    validation = (work / "dataset" / "validation.csv").read_text().splitlines()
    assert training[0] == validation[0] == "path,label" and len(training) - 1 == 9 and len(validation) - 1 == 3
    assert {line.split(",")[1] for line in validation[1:]} == {"cat", "dog", "fox"}, "stratified"
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(f"{i}.jpg" for i in range(12)), "untouched"
    result = invoke("run", "--set", "framework=fake", "--set", "weights=null", "--set", "epochs=1",
                    "-p", "tests.fake_framework")
    assert result.exit_code == 0, result.output
    assert "Dataset: 9 training and 3 validation images, 3 classes, listed in training.csv and validation.csv" \
        in result.output
