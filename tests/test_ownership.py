"""tl never replaces or deletes what it did not write, and no kill while publishing loses a model or mixes two
runs' reports."""

import json

import pytest

from tests.conftest import one_line_error
from tests.test_run import write_plugin
from tlcore import outputs
from tlcore.config import load_config
from tlcore.errors import ConfigError
from tlcore.hookspecs import hookimpl
from tlcore.lock import LOCK_FILE, _locked


def test_evaluate_result_dir_inside_saved_model_is_refused_when_read(project):
    for inside in ("out/saved_model", "out/saved_model/results"):
        with pytest.raises(ConfigError, match=r'"evaluate_result_dir" \(.*\) is inside .*saved_model, which every run '
                                              "replaces whole; choose a folder outside it"):
            load_config(project.write(evaluate_result_dir=inside))
    assert not (project.root / "out").exists()

def test_the_lock_on_a_file_its_holder_removed_meanwhile_is_taken_again_on_the_file_that_is_there(tmp_path,
                                                                                                 monkeypatch):
    from tlcore import lock

    path = tmp_path / LOCK_FILE
    path.write_text("")
    try_lock = lock._try_lock
    calls = []

    def holder_finishes_first(handle):
        if not calls:  # the run that held it finishes between this run's open and its lock: it removes the file
            path.unlink()
        calls.append(handle)
        return try_lock(handle)

    monkeypatch.setattr(lock, "_try_lock", holder_finishes_first)
    second = _locked(path)
    monkeypatch.setattr(lock, "_try_lock", try_lock)
    assert second is not None and path.exists()
    assert _locked(path) is None, "a third run cannot lock while the second holds the lock"
    second.close()

def test_a_picture_that_fails_half_way_leaves_no_file(tmp_path):
    from tlplugins.reports.figures import save

    class Breaks:
        def savefig(self, file, **options):
            open(file, "wb").write(b"\x89PNG half")
            raise OSError("disk full")

    with pytest.raises(OSError):
        save(Breaks(), tmp_path / "confusion_matrix.png")
    assert list(tmp_path.iterdir()) == []

def test_a_plugin_failing_at_the_end_of_the_run_says_the_outputs_are_complete(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "fails_at_end", """
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_on_run_end():
            raise RuntimeError("webhook down")
    """)
    result = project.run("-p", name)
    assert result.exit_code == 1
    error = one_line_error(result)
    assert 'failed in tl_on_run_end: RuntimeError: webhook down' in error
    assert "the run's outputs were written before it and are complete" in error
    assert (project.root / "out" / "saved_model" / "tl_run.json").is_file() and project.results()
