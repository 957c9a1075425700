"""The commands around a run: `tl init`, `tl config schema` and `tl run --set` (fake framework); `tl predict` is in
test_predict.py."""

import json
import os

import pytest
from click.testing import CliRunner

from tlcli.main import main
from tests.builders import solid_jpegs
from tests.conftest import REPO, one_line_error


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


# --- tl init ------------------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """One folder per class (7, 5 and 1 images), and an empty working folder as the current folder."""
    solid_jpegs(tmp_path / "photos", ["red", "green"], per_class=7, size=16)
    solid_jpegs(tmp_path / "photos" / "lonely", ["one"], per_class=1, size=16)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path / "photos", work


def test_init_splits_one_folder_per_class_with_links_and_moves_nothing(photos):
    source, work = photos
    before = sorted(p.relative_to(source) for p in source.rglob("*"))
    result = invoke("init", source, "--split", "0.3")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(source) for p in source.rglob("*")) == before, "the originals are untouched"
    dataset = work / "dataset"
    counts = {(part, name): len(list((dataset / part / name).glob("*"))) for part in ("training", "validation")
              for name in ("red", "green")}
    assert counts == {("training", "red"): 5, ("validation", "red"): 2, ("training", "green"): 5,
                      ("validation", "green"): 2}
    assert os.stat(next((dataset / "training" / "red").glob("*"))).st_nlink == 2, "hard links, not copies"
    assert json.loads((dataset / "labels.json").read_text()) == {"green": 0, "lonely": 1, "red": 2}
    assert "class \"lonely\" has one image; it goes to training only" in result.output
    assert "11 training and 4 validation images of 3 classes, as hard links to the originals" in result.output
    config = json.loads((work / "configuration.json").read_text())
    assert config["dataset_training_dir"] == "dataset/training" and config["evaluate_label_file"] == \
        "dataset/labels.json"
    assert "Next: tl run" in result.output


def test_init_is_reproducible_and_never_overwrites_without_force(photos):
    source, work = photos
    assert invoke("init", source, "--split", "0.3", "--seed", "4").exit_code == 0
    first = sorted(p.name for p in (work / "dataset" / "validation" / "red").iterdir())
    result = invoke("init", source, "--split", "0.3")
    assert result.exit_code == 1 and "configuration.json exists; tl init never replaces it without --force" in \
        one_line_error(result)
    assert invoke("init", source, "--split", "0.3", "--seed", "4", "--force").exit_code == 0
    assert sorted(p.name for p in (work / "dataset" / "validation" / "red").iterdir()) == first, "same seed, same split"
    (work / "dataset" / ".tl-init.json").unlink()
    result = invoke("init", source, "--split", "0.3", "--force")
    assert "exists and was not made by tl init; move it away" in one_line_error(result)


def test_init_on_the_sdk_layout_writes_the_missing_labels_and_a_configuration_that_runs(project, monkeypatch):
    (project.root / "dataset" / "labels.json").unlink()
    work = project.root / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke("init", project.root / "dataset")
    assert result.exit_code == 0, result.output
    assert json.loads((project.root / "dataset" / "labels.json").read_text()) == {"cat": 0, "dog": 1, "fox": 2}
    result = invoke("run", "--set", "framework=fake", "--set", "weights=null", "-p", "tests.fake_framework")
    assert result.exit_code == 0, result.output
    assert json.loads((work / "output" / "evaluation" / "results.json").read_text())["num_images"] == 6


@pytest.mark.parametrize("args, message", [
    ([], "has 2 class folders and no training/ and validation/ folders; run `tl init"),
    (["--split", "1.5"], "--split is 1.5; give the share of each class kept for validation"),
])
def test_init_says_what_to_do(photos, args, message):
    source, _ = photos
    (source / "lonely").rename(source.parent / "lonely")
    result = invoke("init", source, *args)
    assert result.exit_code == 2 and message in one_line_error(result)


# --- tl config schema ------------------------------------------------------------------------------------


def test_the_schema_describes_every_key_and_checks_a_configuration():
    from tlcore.config import CORE_KEYS

    result = invoke("config", "schema", "-p", "tests.fake_framework")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert set(schema["required"]) == {"dataset_training_dir", "dataset_validation_dir", "output_dir",
                                       "evaluate_result_dir"}
    assert {key.name for key in CORE_KEYS} <= set(schema["properties"]) and schema["additionalProperties"] is False
    assert schema["properties"]["epochs"] == {"description": "passes over the training images", "type": "integer",
                                              "minimum": 1, "maximum": 100000, "default": 10}
    assert schema["properties"]["seed"]["type"] == ["integer", "null"]
    assert "framework torch" in schema["properties"]["source_torch_model"]["description"]
    example = json.loads((REPO / "examples" / "photos" / "configuration.json").read_text())
    assert set(example) <= set(schema["properties"])
    for name, value in example.items():
        expected = schema["properties"][name]["type"]
        kinds = {"string": str, "integer": int, "null": type(None)}
        assert isinstance(value, tuple(kinds[k] for k in ([expected] if isinstance(expected, str) else expected)))


# --- tl run --set -----------------------------------------------------------------------------------------


def test_set_overrides_a_key_for_one_run_and_is_recorded(project):
    project.write()
    result = invoke("run", project.config_path, "-p", "tests.fake_framework", "--set", "epochs=3",
                    "--set", "block_plugins=[\"metrics.per_class\"]")
    assert result.exit_code == 0, result.output
    assert "Epoch 3/3" in result.stdout and "per_class" not in project.results()
    record = json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
    assert record["configuration"]["epochs"] == 3
    assert json.loads(project.config_path.read_text())["epochs"] == 2, "the file is unchanged"


@pytest.mark.parametrize("setting, message", [
    ("epochs=many", '--set: "epochs" must be an integer, not a string ("many")'),
    ("epoch=3", '--set: unknown key "epoch"; did you mean "epochs"?'),
    ("epochs", "--set epochs: write key=value"),
])
def test_a_bad_set_is_one_line_naming_it(project, setting, message):
    project.write()
    result = invoke("run", project.config_path, "-p", "tests.fake_framework", "--set", setting)
    assert result.exit_code == 2
    assert message in one_line_error(result)


def test_set_paths_start_at_the_current_folder(project, monkeypatch, tmp_path):
    project.write()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("run", project.config_path, "-p", "tests.fake_framework", "--set", "output_dir=my_out")
    assert result.exit_code == 0, result.output
    assert (elsewhere / "my_out" / "saved_model" / "tl_run.json").is_file()


def test_the_new_commands_start_without_a_framework():
    import subprocess
    import sys

    probe = ("import sys\nfrom click.testing import CliRunner\nfrom tlcli.main import main\n"
             "for args in (['config', 'schema'], ['init', '--help'], ['predict', '--help']):\n"
             "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "[]", result.stderr
