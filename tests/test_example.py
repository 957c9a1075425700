"""The example dataset and README's first command: a newcomer's first run never rots."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_tl

pytestmark = pytest.mark.tensorflow

EXAMPLE = REPO / "examples" / "photos"
OFFLINE_AND_SMALL = ["--set", "weights=null", "--set", "mobilenet_alpha=0.35", "--set", "input_tensor_size=96",
                     "--set", "epochs=2"]
"""Network aside (no ImageNet download) and small, so that the run takes seconds."""


def test_the_example_dataset_is_real_photos_with_credits_for_each():
    photos = sorted(EXAMPLE.glob("dataset/*/*/*.jpg"))
    credits = json.loads((EXAMPLE / "credits.json").read_text())
    assert len(photos) == 126 and sum(p.stat().st_size for p in photos) < 3 * 2**20, "a few MB at most"
    assert sorted(image["file"] for image in credits["images"]) == sorted(str(p.relative_to(EXAMPLE)) for p in photos)
    assert {image["licence"] for image in credits["images"]} <= {"Public Domain", "CC0-1.0", "CC-BY-2.0", "CC-BY-3.0"}
    assert all(image["author"] and image["source"].startswith("http") for image in credits["images"])
    listed = (EXAMPLE / "CREDITS.md").read_text()
    assert all(str(p.relative_to(EXAMPLE)) in listed for p in photos)


def test_the_example_configuration_trains_and_reports(tmp_path):
    example = shutil.copytree(EXAMPLE, tmp_path / "photos", ignore=shutil.ignore_patterns("output"))
    result = run_tl("run", example / "configuration.json", *OFFLINE_AND_SMALL)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^Top-1 accuracy: [\d.]+ \(\d+ of 32 validation images\)$", result.stdout, re.M)
    results = json.loads((example / "output" / "evaluation" / "results.json").read_text())
    assert results["num_images"] == 32 and set(results["per_class"]) == {"animal", "fish", "monument", "tool"}
    assert (example / "output" / "evaluation" / "summary.html").is_file()


def readme_first_command():
    """README's set-up-and-run command, as ``(the folder it changes to, the tl arguments)``."""
    readme = (REPO / "README.md").read_text()
    command = re.search(r"```sh\n(python3\.11 -m venv \.venv && .*?)\n```", readme).group(1)
    match = re.fullmatch(r"python3\.11 -m venv \.venv && \.venv/bin/pip install -e \. && cd (\S+) && "
                         r"(?:\.\./)+\.venv/bin/tl (run.*)", command)
    assert match, f"README's first command changed shape; update this test: {command}"
    return match.group(1), match.group(2).split()


def test_readmes_first_command_on_a_fresh_clone_network_aside(tmp_path):
    """The clone has the example; the command's `tl run` (run with this environment's Python instead of a new
    venv, and without the ImageNet download) finishes with a Top-1 figure and a summary."""
    folder, arguments = readme_first_command()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    if not (clone / folder / "configuration.json").exists():
        pytest.fail(f"a fresh clone has no {folder}/configuration.json: commit the example")
    result = subprocess.run(
        [sys.executable, "-m", "cli", *arguments, *OFFLINE_AND_SMALL], cwd=clone / folder,
        env={**__import__("os").environ, "PYTHONPATH": str(clone)}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Top-1 accuracy:" in result.stdout and "Summary: " in result.stdout
    assert (clone / folder / "output" / "evaluation" / "results.json").is_file()
