"""tl never replaces or deletes what it did not write, and no kill while publishing loses a model or mixes two
runs' reports."""

import io
import json
import os
import shutil
import time

import pytest

from tests.conftest import one_line_error
from tests.test_run import Recorder, run_with, write_plugin
from tlcore import outputs
from tlcore import run as run_module
from tlcore.config import load_config
from tlcore.errors import ConfigError, OutputError
from tlcore.hookspecs import hookimpl
from tlcore.lock import LOCK_FILE, _locked, output_lock
from tlcore.outputs import OWNED, check_owned

MINIMAL = ["reports.figures", "reports.summary", "reports.tables"]
"""Report plugins a test of the publishing rules does without (they are slow and add nothing to it)."""


class Generation:
    """Writes reports and a metric that say which run (its ``epochs``) wrote them; ``extra`` is written only by
    this run."""

    def __init__(self, extra):
        self.extra = extra

    @hookimpl
    def tl_write_reports(self, path, config):
        (path / "a.txt").write_text(f"{config.epochs}")
        (path / "set").mkdir()
        (path / "set" / "b.txt").write_text(f"{config.epochs}")
        (path / self.extra).write_text(f"{config.epochs}")
        return ["a.txt", "set", self.extra]

    @hookimpl
    def tl_evaluate(self, config):
        return {"generation": config.epochs}


def minimal_run(project, *plugins, **changes):
    from tlcore.config import read_selection
    from tlcore.pluginmanager import make_plugin_manager
    from tlcore.prepare import framework_keys
    from tlcore.report import Reporter
    from tlplugins import BUILTIN_PLUGINS

    manager = make_plugin_manager(BUILTIN_PLUGINS, blocked=MINIMAL, entrypoints=False, extra=["tests.fake_framework"])
    for index, plugin in enumerate(plugins):
        manager.register(plugin, name=f"test-plugin-{index}")
    path = project.write(**{"data_check": False, **changes})
    config = load_config(path, plugin_keys=framework_keys(manager, read_selection(path)[1])[0])
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    return run_module.run(config, manager, reporter), reporter


# 4. Files of the user's in evaluate_result_dir are never overwritten

@pytest.mark.parametrize("name", ["results.json", "summary.html", "history.csv"])
def test_a_file_of_the_users_where_tl_would_write_a_report_is_refused_and_kept(project, name):
    results = project.root / "results"
    results.mkdir()
    (results / name).write_text("the user's own")
    recorder = Recorder()
    with pytest.raises(OutputError, match=f"{results / name} was not written by tl .*move it away or delete it"):
        run_with(project, recorder)
    assert (results / name).read_text() == "the user's own"
    assert "tl_train" not in recorder.calls, "refused before training"
    assert not (project.root / "out" / "saved_model").exists(), "nothing published: the model neither"
    (results / name).unlink()
    run_with(project)
    assert (results / name).read_text() != "the user's own", "deleted, the file is tl's to write"


def test_a_report_the_user_changed_after_the_run_is_not_replaced(project):
    run_with(project)
    summary = project.root / "results" / "summary.html"
    summary.write_text(summary.read_text() + "<!-- my notes -->")
    result = project.run()
    assert result.exit_code == 1
    assert f"{summary} was not written by tl (or was changed since)" in one_line_error(result)
    assert summary.read_text().endswith("<!-- my notes -->")


# 5. The next run removes only what tl wrote and found

def test_a_listed_report_a_plugin_did_not_write_is_neither_recorded_nor_removed_later(project):
    class Claims:
        @hookimpl
        def tl_write_reports(self):
            return ["notes.txt"]

    results = project.root / "results"
    result, reporter = minimal_run(project, Claims())
    assert 'returned "notes.txt" but wrote no such file' in reporter.err.getvalue()
    record = json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
    assert "notes.txt" not in record["reports"]
    assert "notes.txt" not in json.loads((results / OWNED).read_text())["files"]
    assert [path.name for path in result.reports] == []
    (results / "notes.txt").write_text("the user's own")
    minimal_run(project)
    assert (results / "notes.txt").read_text() == "the user's own"


def test_a_folder_of_an_earlier_run_that_holds_the_users_files_is_left_alone_and_then_refused(project):
    results = project.root / "results"
    minimal_run(project, Generation("old.txt"))
    (results / "set" / "mine").mkdir()
    (results / "set" / "mine" / "keep.txt").write_text("the user's own")
    _, reporter = minimal_run(project)
    assert not (results / "a.txt").exists() and not (results / "old.txt").exists(), "tl's own, not written again"
    assert (results / "set" / "mine" / "keep.txt").read_text() == "the user's own"
    assert f"{results / 'set' / 'mine'} was not written by tl: set, which an earlier run wrote, is left as it is" \
        in reporter.err.getvalue()
    with pytest.raises(OutputError, match=f"{results / 'set' / 'mine'} was not written by tl .* to let tl write set"):
        minimal_run(project, Generation("old.txt"))
    assert (results / "set" / "mine" / "keep.txt").read_text() == "the user's own"


def test_an_entry_a_plugin_wrote_without_naming_it_is_not_published(project):
    class Unnamed:
        @hookimpl
        def tl_write_reports(self, path):
            (path / "stray.txt").write_text("x")
            return []

    _, reporter = minimal_run(project, Unnamed())
    assert 'wrote "stray.txt" without returning its name' in reporter.err.getvalue()
    assert not (project.root / "results" / "stray.txt").exists()


def test_tl_check_writes_its_data_health_files_over_its_own_only(project):
    from click.testing import CliRunner

    from tlcli.main import main

    def check():
        return CliRunner().invoke(main, ["check", str(project.write()), "-p", "tests.fake_framework"])

    results = project.root / "results"
    results.mkdir()
    (results / "data_health.json").write_text("the user's own")
    assert f"{results / 'data_health.json'} was not written by tl" in one_line_error(check())
    assert (results / "data_health.json").read_text() == "the user's own"
    (results / "data_health.json").unlink()
    assert check().exit_code == 0
    assert check().exit_code == 0, "its own files, written again"
    assert minimal_run(project, data_check=True)[0].health is not None, "a run replaces what tl check wrote"


def test_tl_quantize_refuses_a_results_json_the_user_changed_before_quantizing(project):
    from tests.test_quantize import quantize_cli

    run_with(project)
    results_file = project.root / "results" / "results.json"
    results_file.write_text(results_file.read_text().replace("{", '{"my_note": 1,', 1))
    error = one_line_error(quantize_cli(project))
    assert f"{results_file} was not written by tl (or was changed since)" in error
    assert '"my_note": 1' in results_file.read_text() and not (project.root / "out" / "imx500").exists()


# 6. No kill while publishing loses a model or mixes two runs' reports

def killed_at(step, project, swap):
    """Run in a child process that dies (os._exit, no clean-up) at the ``step``-th rename, replace, swap or removal
    of publishing; True if it died there, False if the run finished first."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            count = {"steps": 0, "on": False}

            def counted(function):
                def call(*args, **kwargs):
                    if count["on"]:
                        count["steps"] += 1
                        if count["steps"] == step:
                            os._exit(9)
                    return function(*args, **kwargs)
                return call

            os.rename, os.replace, shutil.rmtree = counted(os.rename), counted(os.replace), counted(shutil.rmtree)
            outputs.exchange = counted(outputs.exchange if swap else lambda first, second: False)
            publish = run_module.publish_together

            def publishing(*args, **kwargs):
                count["on"] = True
                return publish(*args, **kwargs)

            run_module.publish_together = publishing
            minimal_run(project, Generation("new.txt"), epochs=2)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) in (0, 9)
    return os.waitstatus_to_exitcode(status) == 9


def generation(project):
    """1 when the model and every report are the first run's, 2 when all are the second's (asserts one of them)."""
    out, results = project.root / "out", project.root / "results"
    record = json.loads((out / "saved_model" / "tl_run.json").read_text())
    assert json.loads((out / "saved_model" / "model.json").read_text()) is not None, "the model loads"
    model = record["configuration"]["epochs"]
    reports = {(results / "a.txt").read_text(), (results / "set" / "b.txt").read_text(),
               str(json.loads((results / "results.json").read_text())["generation"])}
    assert len(reports) == 1, "the reports are all of one run"
    extra = sorted(path.name for path in results.iterdir() if path.name in ("old.txt", "new.txt"))
    assert extra == [{"1": "old.txt", "2": "new.txt"}[reports.pop()]]
    check_owned(results, [path.name for path in results.iterdir() if path.name not in (OWNED, LOCK_FILE)])
    return model


@pytest.mark.parametrize("swap", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_kill_at_any_step_of_publishing_leaves_a_model_and_one_set_of_reports(project, swap):
    minimal_run(project, Generation("old.txt"), epochs=1)
    before = project.root.parent / f"{project.root.name}-before"
    shutil.copytree(project.root, before, symlinks=True)
    seen = set()
    step = 1
    while killed_at(step, project, swap):
        with output_lock({"output_dir": project.root / "out", "evaluate_result_dir": project.root / "results"},
                         "the next tl run"):
            pass  # what the next run does first: finish or undo what the killed one left
        seen.add(generation(project))
        assert sorted(path.name for path in (project.root / "out").iterdir()) == [".tl-checkpoint", "saved_model"] \
            or sorted(path.name for path in (project.root / "out").iterdir()) == ["saved_model"]
        shutil.rmtree(project.root)
        shutil.copytree(before, project.root, symlinks=True)
        step += 1
    assert generation(project) == 2
    assert seen == {1, 2} and step > 5, "kills before and after the point where the new outputs count"


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


# 7. and 8. Configurations that would publish wrongly are refused before training; one lock at a time

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


# 9. A failure after publishing says the outputs are complete

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



def test_outputs_of_a_tl_from_before_the_ownership_record_are_taken_over_unless_changed_later(project):
    """A folder an earlier tl wrote has no .tl-owned.json: what its run record lists, unchanged since, is tl's;
    a file changed long after that run stays the user's."""
    run_with(project)
    results = project.root / "results"
    (results / ".tl-owned.json").unlink()
    run_with(project)
    assert (results / ".tl-owned.json").is_file(), "taken over, and recorded"

    (results / ".tl-owned.json").unlink()
    later = time.time() + 7200
    os.utime(results / "history.csv", (later, later))
    with pytest.raises(OutputError, match=f"{results / 'history.csv'} was not written by tl"):
        run_with(project)
