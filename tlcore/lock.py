"""One tl at a time per output folder, and the leftovers of a killed run cleaned up.

A run (or ``tl quantize``) takes an advisory lock on each of its output folders
(``output_dir``, ``evaluate_result_dir``) before it imports a framework: a second
one refuses at once and names the running one, instead of mixing its saved_model
with the other's results.json. The operating system releases the lock when a
process dies, however it dies, so a killed run never leaves it stuck. With the
lock held, what a run killed while publishing left half done is finished or put
back (:func:`tlcore.outputs.restore`: the previous saved_model, a set of reports),
and hidden staging files that only tl makes (``.*.tl-partial-*``, ``.*.tl-old-*``)
are leftovers of a run that was killed before it could remove them: they are removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator, Mapping

from tlcore.errors import OutputError
from tlcore.outputs import restore

if TYPE_CHECKING:
    from tlcore.report import Reporter

LOCK_FILE = ".tl-lock"
LEFTOVER = re.compile(r"^\..+\.tl-(partial|old|write-check)-[A-Za-z0-9_]+$")
"""The names of tl's own staging files and folders (tempfile's random suffixes)."""


def _try_lock(handle: IO[str]) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
        started = time.strftime("%H:%M:%S", time.localtime(data["started"]))
        return f"{data['command']} (pid {data['pid']} on {data['host']}, started {started})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another tl"


def _locked(path: Path) -> IO[str] | None:
    """The lock file ``path``, opened and locked, or None when another process holds it. A lock taken on a file
    that its holder removed in the meantime (when it finished) is no lock: the file is opened again."""
    while True:
        handle: IO[str] = open(path, "a+", encoding="utf-8")
        if not _try_lock(handle):
            handle.close()
            return None
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()


@contextmanager
def output_lock(folders: Mapping[str, Path], command: str, reporter: Reporter | None = None) -> Iterator[None]:
    """Hold the lock of every folder of ``folders`` (configuration key -> folder; created if missing)
    for the ``with`` block.

    :raises OutputError: when a folder cannot be written, or another tl holds one of them.
    """
    handles: list[tuple[IO[str], Path]] = []
    created: list[Path] = []
    try:
        for folder, key in sorted({Path(f).resolve(): k for k, f in folders.items()}.items()):
            created += [parent for parent in reversed([folder, *folder.parents]) if not parent.exists()]
            try:
                folder.mkdir(parents=True, exist_ok=True)
                handle = _locked(folder / LOCK_FILE)
            except OSError as exc:
                for parent in reversed(created):
                    try:
                        parent.rmdir()
                    except OSError:
                        break
                raise OutputError(f'cannot write to "{key}" {folder}: {exc.strerror}; choose a writable folder') from None
            if handle is None:
                raise OutputError(f"{_holder(folder / LOCK_FILE)} is writing to {folder}; wait for it to finish, "
                                  "or choose another output folder")
            handle.seek(0)
            handle.truncate()
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": command},
                      handle)
            handle.flush()
            handles.append((handle, folder / LOCK_FILE))
            restored = restore(folder)
            if restored and reporter is not None:
                reporter.warning(f"Restored {', '.join(restored)} in {folder}, which an interrupted run had moved away")
            removed = remove_leftovers(folder)
            if removed and reporter is not None:
                reporter.info(f"Removed {len(removed)} leftover(s) of an interrupted run in {folder}: "
                              + ", ".join(sorted(removed))[:300])
        yield
    finally:
        for held, path in handles:
            path.unlink(missing_ok=True)  # a run that locked this file meanwhile sees it gone (_locked) and retries
            held.close()  # closing releases the lock
        for folder in reversed(created):  # folders this lock created, if the run left them empty
            try:
                folder.rmdir()
            except OSError:
                break


def remove_leftovers(folder: Path) -> list[str]:
    """Remove tl's staging files and folders in ``folder`` (and in its feature cache); call with its lock held."""
    removed = []
    for place in (folder, folder / ".tl-cache"):
        if not place.is_dir():
            continue
        for entry in place.iterdir():
            if LEFTOVER.match(entry.name) and not entry.is_symlink():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry.name)
    return removed


def command_line() -> str:
    """How this process was started, for the message another tl shows."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    arguments = " ".join(sys.argv[1:3])
    return f"{'tl' if name in ('tl', '__main__.py') else name} {arguments}".strip()
