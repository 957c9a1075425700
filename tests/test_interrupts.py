"""Ctrl-C and SIGTERM in every phase of a real run: a quick stop, no partial files, old outputs intact."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.builders import colour_project
from tests.conftest import REPO, is_output

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory):
    """A project whose output folders already hold a finished run's outputs."""
    root = tmp_path_factory.mktemp("interrupts")
    config = colour_project(root, train_per_class=40, val_per_class=2, size=48, batch_size=4, epochs=2,
                            evaluate_result_dir="results")
    finished = start(config)
    assert finished.wait(timeout=300) == 0, finished.stdout.read()
    return root, config, snapshot(root)


def start(config, *args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tlcli", "run", str(config), *args],
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def snapshot(root):
    """Every file under the output folders with its content."""
    files = {}
    for folder in ("out", "results"):
        for path in sorted((root / folder).rglob("*")):
            if is_output(path.relative_to(root)):
                files[str(path.relative_to(root))] = path.read_bytes() if path.is_file() else None
    return files


def wait_for(process, text, timeout=120):
    """Read the process's output until a line contains ``text``; return everything read."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    process.kill()
    raise AssertionError(f"never saw {text!r}:\n{''.join(seen)}")


def stopped(process, output, timeout):
    """Wait for ``process`` to end (killing it after ``timeout`` seconds): its exit code, the seconds it took, and
    ``output`` with the rest of what it printed."""
    waited = time.monotonic()
    try:
        code = process.wait(timeout=timeout)
    finally:
        process.kill()
    return code, time.monotonic() - waited, output + process.stdout.read()


def exit_code(signum):
    """What tl exits with after ``signum``: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + signum if signum == signal.SIGTERM else 130


@pytest.mark.parametrize("phase, marker, signum", [
    ("indexing", "IN tl_load_dataset", signal.SIGINT),
    ("model loading", "IN tl_load_base_model", signal.SIGTERM),
    ("feature extraction", "Computing features once per image", signal.SIGINT),
    ("training", "IN tl_on_epoch_end", signal.SIGTERM),
    ("saving", "IN tl_save_model", signal.SIGINT),
    ("evaluation", "IN tl_evaluate", signal.SIGTERM),
])
def test_a_signal_in_any_phase_stops_quickly_and_keeps_previous_outputs(previous_run, phase, marker, signum):
    root, config, before = previous_run
    hook = marker.split()[-1] if marker.startswith("IN ") else ""
    process = start(config, "-p", "tests.slow_phase", env={"TL_TEST_SLOW_HOOK": hook})
    output = wait_for(process, marker)
    process.send_signal(signum)
    code, stopped_after, output = stopped(process, output, timeout=15)
    assert code == exit_code(signum), output
    assert stopped_after < 5, f"{phase}: took {stopped_after:.1f} s to stop"
    assert "Traceback" not in output, output
    assert ("Terminated" if signum == signal.SIGTERM else "Interrupted") in output
    assert snapshot(root) == before, f"{phase}: outputs changed or partial files left"
    assert json.loads((root / "results" / "results.json").read_text())["num_images"] == 4


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_another_thread_receives_still_stops_a_waiting_run(previous_run, signum):
    """The kernel may hand the signal to a framework's thread while the main thread waits in a plugin's call;
    the run stops all the same, as quickly."""
    root, config, before = previous_run
    process = start(config, "-p", "tests.slow_phase",
                    env={"TL_TEST_SLOW_HOOK": "tl_load_base_model", "TL_TEST_SIGNAL_FROM_THREAD": signum.name})
    output = wait_for(process, "SIGNALLED")
    code, stopped_after, output = stopped(process, output, timeout=30)
    assert code == exit_code(signum), output
    assert stopped_after < 5, f"took {stopped_after:.1f} s to stop"
    assert "Traceback" not in output, output
    assert snapshot(root) == before
