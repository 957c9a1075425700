"""One tl at a time per output folder; a killed run neither blocks the next nor leaves its staging files."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REPO, one_line_error
from tlcore.lock import LOCK_FILE, output_lock
from tlcore.outputs import OWNED


def test_a_second_run_on_the_same_folders_refuses_at_once_naming_the_first(project):
    assert project.run().exit_code == 0
    before = project.files()
    with output_lock({"output_dir": project.root / "out"}, "tl run first.json"):
        result = project.run()
    assert result.exit_code == 1
    error = one_line_error(result)
    assert error.startswith(f"Error: tl run first.json (pid {os.getpid()} on ")
    assert f"is writing to {project.root / 'out'}; wait for it to finish, or choose another output folder" in error
    assert project.files() == before, "the second run wrote nothing"
    assert project.run().exit_code == 0, "the lock is gone with the first run"
    assert not (project.root / "out" / LOCK_FILE).exists()



IMPORTED = """
import sys
from tlcli.main import main
try:
    main()
finally:
    print("frameworks imported:", sorted(name for name in ("tensorflow", "torch") if name in sys.modules))
"""


def test_a_second_run_refuses_before_importing_its_framework(project):
    for framework in ("keras", "torch"):
        project.write(framework=framework, weights=None)
        with output_lock({"output_dir": project.root / "out"}, "tl run first.json"):
            done = subprocess.run([sys.executable, "-c", IMPORTED, "run", str(project.config_path)], cwd=project.root,
                                  env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                                  timeout=60)
        assert done.returncode == 1 and "Error: tl run first.json (pid" in done.stderr, done.stderr
        assert "frameworks imported: []" in done.stdout, f"{framework}: the lock is checked first"

def test_a_killed_run_does_not_leave_the_lock_held(project):
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time, pathlib; from tlcore.lock import output_lock\n"
            f"with output_lock({{'output_dir': pathlib.Path({str(project.root / 'out')!r})}}, 'tl run'):\n"
            "    print('LOCKED', flush=True); time.sleep(60)\n")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        assert project.run().exit_code == 1
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    time.sleep(0.1)
    result = project.run()
    assert result.exit_code == 0, result.output


def test_leftovers_of_a_killed_run_are_removed_by_the_next(project):
    assert project.run().exit_code == 0
    out, results = project.root / "out", project.root / "results"
    (out / ".saved_model.tl-partial-k2x9_a").mkdir()
    (out / ".saved_model.tl-partial-k2x9_a" / "saved_model.pb").write_bytes(b"half")
    (out / ".saved_model.tl-old-q81zz").mkdir()
    (results / ".results.json.tl-partial-7hq2").write_text("{")
    (out / ".saved_model.backup").mkdir()  # not a name tl makes: never touched
    result = project.run()
    assert result.exit_code == 0, result.output
    assert "Removed 2 leftover(s) of an interrupted run in" in result.output
    assert sorted(p.name for p in out.iterdir()) == [".saved_model.backup", "saved_model"]
    assert "results.json" in {p.name for p in results.iterdir()}
    assert not [p.name for p in results.iterdir() if p.name.startswith(".") and p.name != OWNED], "no leftovers"


@pytest.mark.parametrize("receiver", ["main thread", "another thread"])
def test_publishing_holds_a_signal_until_the_move_is_done(receiver):
    """The kernel may hand a signal to any thread of the process (a framework's thread pool, say); the move
    finishes either way, and the interrupt comes after it."""
    from tlcore import outputs

    moved = []

    def send():
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        with outputs.signals_deferred():
            if receiver == "main thread":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                sender = threading.Thread(target=send)
                sender.start()
                sender.join()
            time.sleep(0.05)
            moved.append("all of it")
    assert moved == ["all of it"]


def test_the_umask_is_read_without_being_changed(monkeypatch, tmp_path):
    from tlcore import outputs

    monkeypatch.setattr(outputs, "_UMASK", [])
    monkeypatch.setattr(os, "umask", lambda mask: (_ for _ in ()).throw(AssertionError("umask changed")))
    mask = outputs._umask()
    assert 0 <= mask <= 0o777
