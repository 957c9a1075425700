"""tl never replaces or deletes what it did not write, and no kill while publishing loses a model or mixes two
runs' reports."""

import io
import json
import os

import pytest

from tests.conftest import one_line_error
from tests.test_run import Recorder, run_with, write_plugin
from tlcore import outputs
from tlcore import run as run_module
from tlcore.config import load_config
from tlcore.errors import ConfigError, OutputError
from tlcore.hookspecs import hookimpl
from tlcore.lock import LOCK_FILE, _locked, output_lock

MINIMAL = ["reports.figures", "reports.summary", "reports.tables"]
"""Report plugins a test of the publishing rules does without (they are slow and add nothing to it)."""


def minimal_run(project, *plugins, **changes):
    from tlcore.config import read_selection
    from tlcore.pluginmanager import make_plugin_manager
    from tlcore.prepare import framework_keys
    from tlcore.report import Reporter
    from tlplugins import BUILTIN_PLUGINS

    manager = make_plugin_manager(BUILTIN_PLUGINS, blocked=MINIMAL, entrypoints=False, extra=["tests.fake_framework"])
    for index, plugin in enumerate(plugins):
        manager.register(plugin, name=f"test-plugin-{index}")
    path = project.write(data_check=False, **changes)
    config = load_config(path, plugin_keys=framework_keys(manager, read_selection(path)[1])[0])
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    return run_module.run(config, manager, reporter), reporter


def test_a_run_after_a_kill_between_the_two_renames_restores_the_previous_model(project):
    minimal_run(project, epochs=1)
    out = project.root / "out"
    old = out / ".saved_model.tl-old-x1y2"
    old.mkdir()
    os.rename(out / "saved_model", old / "saved_model")
    (out / ".saved_model.tl-partial-a1b2").mkdir()  # the new one, complete or not: never published
    with output_lock({"output_dir": out}, "tl run"):
        assert json.loads((out / "saved_model" / "tl_run.json").read_text())["configuration"]["epochs"] == 1
    assert sorted(path.name for path in out.iterdir()) == ["saved_model"]


def test_evaluate_result_dir_inside_saved_model_is_refused_when_read(project):
    for inside in ("out/saved_model", "out/saved_model/results"):
        with pytest.raises(ConfigError, match=r'"evaluate_result_dir" \(.*\) is inside .*saved_model, which every run '
                                              "replaces whole; choose a folder outside it"):
            load_config(project.write(evaluate_result_dir=inside))
    assert not (project.root / "out").exists()


def test_a_read_only_saved_model_is_refused_before_training(project, monkeypatch):
    run_with(project)
    saved = project.root / "out" / "saved_model"
    before = project.files()
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: os.fspath(path) != os.fspath(saved))
    recorder = Recorder()
    with pytest.raises(OutputError, match=f"{saved} is read-only: tl could not replace {saved} after training"):
        run_with(project, recorder)
    assert "tl_train" not in recorder.calls
    assert project.files() == before, "no empty .saved_model.tl-old-* folder either"


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
