"""The example dataset and README's first command: a newcomer's first run never rots."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_tl

EXAMPLE = REPO / "examples" / "photos"
OFFLINE_AND_SMALL = ["--set", "weights=null", "--set", "mobilenet_alpha=0.35", "--set", "input_tensor_size=96",
                     "--set", "epochs=2", "--set", "batch_size=16"]
"""Network aside (no ImageNet download) and small, so that the run takes seconds."""
LICENCES = {"Public Domain", "CC0-1.0", "CC-BY-2.0", "CC-BY-3.0"}
"""No ShareAlike, no GPL: the photos need attribution at most."""


def photos(folder=EXAMPLE):
    return sorted(Path(folder).glob("dataset/*/*/*.jpg"))


def validation_count(folder=EXAMPLE):
    return len(list(Path(folder).glob("dataset/validation/*/*.jpg")))


def test_the_example_dataset_is_real_photos_with_credits_for_each():
    files = photos()
    assert 100 <= len(files) <= 400 and sum(p.stat().st_size for p in files) < 3 * 2**20, "a few MB at most"
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", p.name) for p in files), "simple ASCII file names"
    labels = json.loads((EXAMPLE / "dataset" / "labels.json").read_text())
    for split in ("training", "validation"):
        assert sorted(p.name for p in (EXAMPLE / "dataset" / split).iterdir()) == sorted(labels)
    credits = json.loads((EXAMPLE / "credits.json").read_text())
    assert sorted(image["file"] for image in credits["images"]) == [str(p.relative_to(EXAMPLE)) for p in files]
    assert {image["licence"] for image in credits["images"]} <= LICENCES
    assert all(image["author"] and image["source"].startswith("http") and image["changes"]
               for image in credits["images"])
    listed = (EXAMPLE / "CREDITS.md").read_text()
    assert all(str(p.relative_to(EXAMPLE)) in listed for p in files)
    attribution = listed.split("## Attribution of the CC BY photos", 1)[1].split("\n## ", 1)[0]
    for image in credits["images"]:
        if image["licence"].startswith("CC-BY"):  # author, source, licence and changes, as CC BY asks
            line = next(line for line in attribution.splitlines() if image["file"] in line)
            assert image["author"] in line and image["source"] in line and image["licence_url"] in line, line
    assert (EXAMPLE / "LICENSES.md").is_file()
    assert "output/" in (EXAMPLE / ".gitignore").read_text().split(), "a user's run output stays out of git"


def test_the_example_configuration_is_the_real_thing():
    """The shipped configuration trains MobileNetV2 on ImageNet weights; the tests below shrink it only with --set."""
    values = json.loads((EXAMPLE / "configuration.json").read_text())
    assert values.get("weights", "imagenet") == "imagenet" and values.get("mobilenet_alpha", 1.0) == 1.0
    assert values["dataset_training_dir"] == "dataset/training" and values["output_dir"] == "output"


@pytest.mark.tensorflow
def test_the_example_configuration_trains_and_reports(tmp_path):
    example = shutil.copytree(EXAMPLE, tmp_path / "photos", ignore=shutil.ignore_patterns("output"))
    result = run_tl("run", example / "configuration.json", *OFFLINE_AND_SMALL)
    assert result.returncode == 0, result.stdout + result.stderr
    count = validation_count(example)
    top_1 = rf"^Top-1 accuracy: [\d.]+ \(\d+ of {count} validation images\)$"
    assert re.search(top_1, result.stdout, re.MULTILINE), result.stdout
    results = json.loads((example / "output" / "evaluation" / "results.json").read_text())
    assert results["num_images"] == count
    assert set(results["per_class"]) == set(json.loads((example / "dataset" / "labels.json").read_text()))
    assert (example / "output" / "evaluation" / "summary.html").is_file()


def readme_first_command():
    """README's first ``sh`` block, the set-up-and-run command, as ``(the folder it changes to, the tl arguments)``."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"^```sh\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    assert block, "README.md has no ```sh block; its first one should be the set-up-and-run command"
    command = block.group(1).strip()
    match = re.fullmatch(r"python3\.11 -m venv \.venv && \.venv/bin/pip install -e \. && cd (\S+) && "
                         r"((?:\.\./)+)\.venv/bin/tl (run\b.*)", command)
    assert match, ("README's first command no longer has the shape `python3.11 -m venv .venv && .venv/bin/pip "
                   f"install -e . && cd FOLDER && ../../.venv/bin/tl run ...`; update this test: {command}")
    folder, up, arguments = match.groups()
    assert len(Path(folder).parts) == up.count("../"), f"`cd {folder}` then `{up}.venv` misses the venv"
    return folder, arguments.split()


@pytest.mark.tensorflow
def test_readmes_first_command_on_a_fresh_clone_network_aside(tmp_path):
    """The clone has the example; the command's `tl run` (run with this environment's Python instead of a new
    venv, and without the ImageNet download) finishes with a Top-1 figure and a summary."""
    folder, arguments = readme_first_command()
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "-c", "safe.directory=*", "clone", "--quiet", str(REPO), str(clone)], check=True)
    if not (clone / folder / "configuration.json").exists():
        pytest.fail(f"a fresh clone has no {folder}/configuration.json: commit the example")
    result = subprocess.run(
        [sys.executable, "-m", "tlcli", *arguments, *OFFLINE_AND_SMALL], cwd=clone / folder,
        env={**os.environ, "PYTHONPATH": str(clone)}, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^Top-1 accuracy: ", result.stdout, re.MULTILINE), result.stdout
    assert "\nSummary: " in result.stdout, result.stdout
    assert (clone / folder / "output" / "evaluation" / "results.json").is_file()
