import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tlcli.main import main
from tests.builders import write_config, write_labels

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def plugins_as_installed(monkeypatch):
    """Tests see the plugins that are installed (none but tl's own in CI), whatever the caller's shell says."""
    monkeypatch.delenv("TL_DISABLE_PLUGINS", raising=False)


# The structure of a JPEG (start, JFIF header, start of scan, end) without pixel data:
# it passes the dataset's byte checks, but no decoder can make an image of it.
JPEG_SHELL = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
              b"\xff\xda\x00\x02\x00\x00\xff\xd9")
COLOURS = ((200, 40, 40), (40, 190, 60), (40, 60, 210), (220, 210, 40), (190, 50, 190), (50, 200, 200))


@functools.lru_cache(maxsize=None)
def tiny_jpeg(colour):
    """An 8x8 JPEG of one colour."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def touch_images(root, classes, per_class=3, suffix=".jpg"):
    """Tiny real JPEGs for framework-free tests: each class its own colour, in the order given."""
    for index, name in enumerate(classes):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (folder / f"{name}_{i}{suffix}").write_bytes(tiny_jpeg(COLOURS[index % len(COLOURS)]))


@pytest.fixture
def project(tmp_path):
    """An SDK-layout project: dataset/{training,validation,labels.json} and configuration.json."""
    dataset = tmp_path / "dataset"
    classes = ["cat", "dog", "fox"]
    touch_images(dataset / "training", classes, per_class=4)
    touch_images(dataset / "validation", classes, per_class=2)
    write_labels(dataset, {name: i for i, name in enumerate(classes)})
    return Project(tmp_path)


class Project:
    """A temporary project folder with helpers to write its configuration and run tl on it."""

    def __init__(self, root):
        self.root = root
        self.values = {
            "dataset_training_dir": "dataset/training",
            "dataset_validation_dir": "dataset/validation",
            "batch_size": 2,
            "input_tensor_size": 32,
            "epochs": 2,
            "output_dir": "out",
            "evaluate_result_dir": "results",
            "framework": "fake",
        }

    @property
    def config_path(self):
        return self.root / "configuration.json"

    def write(self, **changes):
        values = {**self.values, **changes}
        for key in [k for k, v in values.items() if v is DELETE]:
            del values[key]
        return write_config(self.root, **values)

    def run(self, *args, fake=True, config=None):
        """``tl run`` in-process; ``fake`` loads the pure-Python framework (``"framework": "fake"``)."""
        if config is None:
            config = self.config_path if self.config_path.exists() else self.write()
        extra = ["-p", "tests.fake_framework"] if fake else []
        return CliRunner().invoke(main, ["run", str(config), *extra, *args])

    def results(self):
        return json.loads((self.root / "results" / "results.json").read_text())

    def files(self):
        """Every file and folder under the project, relative, for before/after comparisons."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*"))


CHECKPOINT = ".tl-checkpoint"
"""The folder in output_dir where a run keeps its state after every epoch, for `tl run --resume`: not an output."""


def is_output(path):
    """Whether ``path`` is one of a run's outputs (not its lock, nor the checkpoint of an interrupted run)."""
    return CHECKPOINT not in Path(path).parts and Path(path).name != ".tl-lock"


DELETE = object()


def run_tl(*args, cwd=None, env=None, timeout=600):
    """``tl`` as a real subprocess (same interpreter), with the repository importable."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tlcli", *map(str, args)], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )


def one_line_error(result):
    """The error line of a failed CLI result; asserts there is exactly one and no traceback."""
    output = result.output if hasattr(result, "output") else result.stdout + result.stderr
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    return errors[0]
