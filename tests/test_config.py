"""configuration.json: every mistake gets one line naming the key and the fix, and exit code 2."""

import json
import os

import pytest

from tests.conftest import DELETE, one_line_error
from tlcore.config import ConfigKey, load_config
from tlcore.errors import ConfigError


def fails(project, *fragments, code=2, **changes):
    """Write the configuration with ``changes``, run, and check the one-line error."""
    project.write(**changes)
    before = project.files()
    result = project.run()
    assert result.exit_code == code, result.output
    line = one_line_error(result)
    for fragment in fragments:
        assert fragment in line, line
    assert project.files() == before, "a failed run must write nothing"
    return line


def test_valid_configuration_runs(project):
    result = project.run()
    assert result.exit_code == 0, result.output
    assert project.results()["num_images"] == 6


def test_missing_configuration_file(project):
    result = project.run(config=project.root / "nope.json")
    assert result.exit_code == 2
    assert "configuration file not found" in one_line_error(result)


def test_configuration_path_is_a_folder(project):
    result = project.run(config=project.root)
    assert result.exit_code == 2
    assert "is a folder" in one_line_error(result)


def test_invalid_json_names_line_and_column(project):
    project.config_path.write_text('{\n  "epochs": 3,\n  "batch_size": \n}')
    result = project.run()
    assert result.exit_code == 2
    assert "not valid JSON" in (line := one_line_error(result))
    assert "line 4 column 1" in line


@pytest.mark.parametrize("text, kind", [("[1, 2]", "a list"), ('"hi"', "a string"), ("3", "an integer")])
def test_json_that_is_not_an_object(project, text, kind):
    project.config_path.write_text(text)
    result = project.run()
    assert result.exit_code == 2
    assert f"must hold a JSON object ({{...}}), not {kind}" in one_line_error(result)


def test_non_utf8_bytes(project):
    project.config_path.write_bytes(b'{"epochs": "\xff"}')
    result = project.run()
    assert result.exit_code == 2
    assert "not UTF-8" in one_line_error(result)


def test_utf8_bom_is_accepted(project):
    project.write()
    project.config_path.write_bytes(b"\xef\xbb\xbf" + project.config_path.read_bytes())
    assert project.run().exit_code == 0


def test_duplicate_key(project):
    project.config_path.write_text('{"epochs": 1, "epochs": 2}')
    result = project.run()
    assert 'key "epochs" appears twice' in one_line_error(result)


@pytest.mark.parametrize("key", ["dataset_training_dir", "dataset_validation_dir", "output_dir", "evaluate_result_dir"])
def test_missing_required_key(project, key):
    fails(project, f'missing required key "{key}"', **{key: DELETE})


def test_unknown_key_names_nearest_valid_key(project):
    fails(project, 'unknown key "bach_size"', 'did you mean "batch_size"?', bach_size=8)


def test_unknown_key_far_from_any_lists_valid_keys(project):
    with pytest.raises(ConfigError, match='unknown key "zzz"; valid keys: .*epochs'):
        load_config(project.write(zzz=1))


def test_with_plugins_blocked_their_keys_are_ignored_with_a_warning_but_typos_still_fail(project):
    """A blocked (or disabled) plugin's keys are expected in the configuration: a warning, not an error."""
    result = project.run("--block", "metrics.per_class", config=project.write(cut_at_layer="block_13"))
    assert result.exit_code == 0, result.output
    assert 'Warning: configuration key "cut_at_layer" is not used by any loaded plugin' in result.output
    fails(project, 'unknown key "bach_size"', 'did you mean "batch_size"?', bach_size=8)


@pytest.mark.parametrize("key, value, message", [
    ("batch_size", 0, "must be at least 1"),
    ("batch_size", -4, "must be at least 1"),
    ("batch_size", 2**40, "must be at most"),
    ("batch_size", "32", "must be an integer, not a string"),
    ("batch_size", 8.5, "must be an integer, not a number"),
    ("batch_size", True, "must be an integer, not a boolean"),
    ("batch_size", None, "must not be null"),
    ("epochs", 0, "must be at least 1"),
    ("epochs", [3], "must be an integer, not a list"),
    ("input_tensor_size", 0, "must be at least 1"),
    ("input_tensor_size", 10**9, "must be at most"),
    ("input_tensor_size", {"w": 3}, "must be an integer, not an object"),
    ("preprocessing", "caffe", 'use one of mobilenet_v2, unit, none, imagenet, or {"mean"'),
    ("preprocessing", "imagenett", 'did you mean "imagenet"?'),
    ("preprocessing", {"mean": [1, 2], "std": [1, 1, 1]}, '"mean" must be a list of 3 numbers'),
    ("preprocessing", {"mean": [1, 2, 3], "std": [1, 0, 1]}, '"std" is [1, 0, 1]; each value must be from 0.01 to 10000'),
    ("preprocessing", {"mean": [1, 2, 3], "std": [1e-300, 1, 1]}, '"std" is [1e-300, 1, 1]; each value must be from'),
    ("preprocessing", {"mean": [1, 2, 1e9], "std": [1, 1, 1]}, "each value is a pixel value from 0 to 255"),
    ("preprocessing", {"mean": [1, 2, 3]}, 'needs "mean" and "std"'),
    ("learning_rate", -1, "must be at least"),
])
def test_wrong_type_or_out_of_range(project, key, value, message):
    fails(project, f'"{key}"', message, **{key: value})


@pytest.mark.parametrize("key", ["dataset_training_dir", "dataset_validation_dir"])
def test_missing_dataset_folder(project, key):
    fails(project, f'"{key}"', "not found", "relative paths start at the configuration file's folder",
          **{key: "dataset/nowhere"})


def test_model_path_missing(project):
    fails(project, '"source_keras_model"', "not found", source_keras_model="models/base.h5", framework="keras")


def test_empty_model_path_means_default_model(project):
    project.write(source_keras_model="")
    assert project.run().exit_code == 0


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_dataset_path(project, value):
    fails(project, '"dataset_training_dir" is empty', dataset_training_dir=value)


def test_file_given_where_folder_expected(project):
    (project.root / "notes.txt").write_text("x")
    fails(project, '"dataset_training_dir"', "is the file", "give the folder of one sub-folder per class, or a .csv",
          dataset_training_dir="notes.txt")
    fails(project, '"output_dir"', "is not a folder", output_dir="notes.txt")


def test_folder_given_where_file_expected(project):
    fails(project, '"evaluate_label_file"', "not a file", evaluate_label_file="dataset")


def test_missing_default_labels_file(project):
    (project.root / "dataset" / "labels.json").unlink()
    fails(project, "labels file not found", "evaluate_label_file")


def test_explicit_labels_file_missing(project):
    fails(project, '"evaluate_label_file"', "file not found", evaluate_label_file="labels/none.json")


def test_checks_run_in_the_sdk_order(project):
    """Model and training paths are checked before the validation path."""
    line = fails(project, '"source_keras_model"', source_keras_model="missing.h5", dataset_validation_dir="missing",
                 framework="keras")
    assert "dataset_validation_dir" not in line
    line = fails(project, '"dataset_training_dir"', dataset_training_dir="missing", dataset_validation_dir="missing")
    assert "dataset_validation_dir" not in line


@pytest.mark.parametrize("key", ["dataset_training_dir", "output_dir", "evaluate_label_file"])
def test_symbolic_link_in_any_path_component(project, key):
    os.symlink(project.root / "dataset", project.root / "linked")
    value = {
        "dataset_training_dir": "linked/training",
        "output_dir": "linked/out",
        "evaluate_label_file": "linked/labels.json",
    }[key]
    fails(project, f'"{key}"', "is a symbolic link", "give the real path", **{key: value})


def test_relative_paths_start_at_the_configuration_folder(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert project.run().exit_code == 0
    assert (project.root / "out" / "saved_model").is_dir()
    assert not (elsewhere / "out").exists()


def test_paths_with_spaces_and_non_ascii(tmp_path):
    from tests.conftest import Project, touch_images
    from tests.builders import write_labels

    root = tmp_path / "mes données" / "projet un"
    touch_images(root / "jeu de données" / "training", ["chat noir", "chien"], per_class=3)
    touch_images(root / "jeu de données" / "validation", ["chat noir", "chien"], per_class=1)
    write_labels(root / "jeu de données", {"chat noir": 0, "chien": 1})
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root)
    project.write(dataset_training_dir="jeu de données/training", dataset_validation_dir="jeu de données/validation",
                  output_dir="sortie é")
    result = project.run()
    assert result.exit_code == 0, result.output
    assert (root / "sortie é" / "saved_model" / "labels.json").is_file()


def test_home_is_expanded(project, monkeypatch):
    monkeypatch.setenv("HOME", str(project.root))
    project.write(dataset_training_dir="~/dataset/training")
    assert project.run().exit_code == 0


def test_defaults_fill_in_optional_keys(project):
    config = load_config(project.write(batch_size=DELETE, epochs=DELETE, input_tensor_size=DELETE))
    assert (config.batch_size, config.epochs, config.input_tensor_size) == (32, 10, 224)
    assert config.evaluate_label_file == project.root / "dataset" / "labels.json"
    assert config.to_dict()["output_dir"] == str(project.root / "out")


def test_plugin_keys_validate_like_core_keys(project):
    key = ConfigKey("threshold", "number", default=0.5, minimum=0, maximum=1, help="a plugin's key")
    assert load_config(project.write(), plugin_keys=[key]).options["threshold"] == 0.5
    assert load_config(project.write(threshold=0.9), plugin_keys=[key]).options["threshold"] == 0.9
    with pytest.raises(ConfigError, match='"threshold" is 2; it must be at most 1'):
        load_config(project.write(threshold=2), plugin_keys=[key])
    with pytest.raises(ConfigError, match='unknown key "threshold"'):
        load_config(project.write(threshold=0.9))


def test_plugin_key_clashing_with_a_core_key_is_refused(project):
    with pytest.raises(ConfigError, match='"epochs" is declared twice'):
        load_config(project.write(), plugin_keys=[ConfigKey("epochs", "integer", default=1)])


def test_weights_key(project):
    fails(project, '"weights"', "file not found", weights="weights/mobilenet.h5", framework="keras")
    fails(project, '"weights" must be "imagenet", null or the path', weights=3, framework="keras")


def test_resolved_configuration_is_recorded_beside_the_model(project):
    project.write(epochs=3)
    assert project.run().exit_code == 0
    record = json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
    assert record["configuration"]["epochs"] == 3
    assert record["configuration"]["dataset_training_dir"] == str(project.root / "dataset" / "training")
    assert record["configuration"]["tensorboard"] is False, "plugins' keys too, defaults filled in"
    assert "weights" not in record["configuration"], "not the keys of another framework's plugins"


@pytest.mark.parametrize("text", [
    '{"epochs": ' + "9" * 5000 + "}",
    "[" * 100000 + "]" * 100000,
    '{"learning_rate": 1' + "0" * 400 + "}",
    '{"learning_rate": 1e400}',
])
def test_pathological_json_is_a_one_line_error(project, text):
    project.config_path.write_text(text)
    result = project.run()
    assert result.exit_code == 2, result.output
    one_line_error(result)


def test_a_configuration_reached_through_a_linked_folder_works(project, tmp_path):
    link = tmp_path.parent / f"{tmp_path.name}-link"
    os.symlink(project.root, link)
    project.write()
    result = project.run(config=link / "configuration.json")
    assert result.exit_code == 0, result.output


def test_output_folder_inside_the_dataset_is_refused(project):
    fails(project, '"output_dir"', 'is inside "dataset_training_dir"', "choose a folder outside the dataset",
          output_dir="dataset/training/out")


def test_trailing_comma_gets_a_hint(project):
    project.config_path.write_text('{\n  "epochs": 3,\n}')
    assert "(a comma before it?)" in one_line_error(project.run())


def test_errors_name_the_configuration_file_the_user_gave(project):
    config = project.root / "my settings.json"
    config.write_text(json.dumps({**project.values, "augmentation": ["flips"]}))
    result = project.run(config=config)
    line = one_line_error(result)
    assert line.startswith('Error: my settings.json: "augmentation" has "flips"; did you mean "flip"?'), line


@pytest.mark.parametrize("value", ["ImageNet", "none", "null"])
def test_weights_spelled_like_a_keyword_gets_a_hint(project, value):
    fails(project, f'"weights" is "{value}"; write "imagenet" (lower case) or null (without quotes)', weights=value,
          framework="keras")


@pytest.mark.parametrize("name", ["/dev/zero", "fifo"])
def test_a_configuration_that_is_not_a_regular_file_is_refused_without_reading_it(project, name):
    """/dev/zero would be read until memory runs out, a FIFO would block forever."""
    if name == "fifo":
        name = project.root / "configuration.json.fifo"
        os.mkfifo(name)
    result = project.run(config=name)
    assert result.exit_code == 2
    assert "is not a regular file (a device, FIFO or socket); give a JSON file" in one_line_error(result)


def test_a_huge_configuration_file_is_refused(project):
    huge = project.root / "huge.json"
    with open(huge, "wb") as handle:
        handle.truncate(17 * 2**20)
    assert "a JSON file of tl's is at most 16 MiB: is it the right file?" in one_line_error(project.run(config=huge))


def test_a_symbolic_link_to_the_configuration_or_to_the_default_labels_file_is_refused(project):
    real = project.write()
    link = project.root / "linked.json"
    link.symlink_to(real)
    assert "is a symbolic link; symbolic links are not allowed" in one_line_error(project.run(config=link))

    labels = project.root / "dataset" / "labels.json"
    labels.rename(project.root / "real-labels.json")
    labels.symlink_to(project.root / "real-labels.json")
    line = one_line_error(project.run(config=real))
    assert f"labels file {labels} is a symbolic link" in line


def test_errors_about_weights_name_the_file_or_set_they_came_from(project):
    config = project.root / "other.json"
    config.write_text(json.dumps({**project.values, "framework": "keras", "weights": "missing.h5"}))
    assert one_line_error(project.run(config=config, fake=False)).startswith('Error: other.json: "weights": file not')
    result = project.run("--set", "weights=missing.h5", config=project.write(framework="keras"), fake=False)
    assert one_line_error(result).startswith('Error: --set: "weights": file not found')


def test_a_comment_gets_the_hint_that_json_has_none(project):
    project.config_path.write_text('{\n  // my settings\n  "epochs": 3\n}')
    line = one_line_error(project.run())
    assert "(JSON has no comments: remove it)" in line and "comma" not in line
