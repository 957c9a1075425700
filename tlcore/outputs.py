"""Writing outputs so that a failed or interrupted run never leaves half of one.

A folder output is built in a hidden staging folder beside its destination and
renamed into place only when complete (swapped in one step where the system can); a file output is written to a temporary
file and renamed. Nothing outside these names is ever touched.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Self

from tlcore.errors import OutputError

MARKER = "tl_run.json"
"""The file that marks a saved_model folder as written by tl (and so replaceable)."""


def prepare_output_dir(path: Path, key: str) -> list[Path]:
    """Create ``path`` if missing and prove it writable, before any long work starts.

    Returns the folders it created, deepest last, so a failed run can remove them.
    """
    created = [parent for parent in reversed([path, *path.parents]) if not parent.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".tl-write-check-"):
            pass
    except OSError as exc:
        remove_if_empty(created)
        raise OutputError(f'cannot write to "{key}" {path}: {exc.strerror}; choose a writable folder') from None
    return created


def remove_if_empty(folders: Iterable[Path]) -> None:
    """Remove ``folders`` (deepest last) that are still empty; never anything with content."""
    for folder in reversed(list(folders)):
        try:
            folder.rmdir()
        except OSError:
            pass


def require_free_space(folder: Path, needed: int, what: str,
                       remedy: str = "free some space or choose another output_dir") -> None:
    """Refuse to start long work whose result could not be written to ``folder``."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OutputError(
            f"not enough free disk space in {folder}: {free / 2**20:.0f} MiB free, {what} needs about "
            f"{needed / 2**20:.0f} MiB; {remedy}"
        )


def check_replaceable(path: Path, marker: str = MARKER) -> None:
    """Refuse to replace the folder ``path`` unless it is missing or a previous tl output (holding ``marker``)."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir() or not (path / marker).is_file():
        raise OutputError(
            f"{path} exists and was not written by tl; move it away or choose another output_dir"
        )
    for folder, _, _ in os.walk(path):
        if not os.access(folder, os.W_OK):
            raise OutputError(f"{folder} is read-only: tl could not replace {path} after training; make it writable "
                              f"(chmod -R u+w {path}), or move it away or choose another output_dir")


class _Staging:
    """A hidden staging folder for ``target``, made on entering the ``with`` block and removed on leaving it
    unless :meth:`publish` (of the subclass) has moved it into place."""

    PREFIX = ""
    """The staging folder's name prefix; ``{name}`` is ``target``'s name."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The staging folder (inside the ``with`` block, before :meth:`publish`)."""
        if self._path is None:
            raise RuntimeError("the staging folder exists inside the with block, until it is published")
        return self._path

    def _parent(self) -> Path:
        """Where the staging folder is made."""
        return self.target.parent

    def __enter__(self) -> Self:
        self._path = Path(tempfile.mkdtemp(prefix=self.PREFIX.format(name=self.target.name), dir=self._parent()))
        os.chmod(self._path, 0o777 & ~_umask())
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None


class StagedDir(_Staging):
    """A hidden folder beside ``target`` that replaces ``target`` on :meth:`publish`.

    Use as a context manager: leaving without publishing (an error, Ctrl-C)
    removes the staging folder and leaves ``target`` as it was.
    """

    PREFIX = ".{name}.tl-partial-"

    def publish(self) -> None:
        """Move the staged folder to ``target``: in one step where the system can swap two folders (Linux), else
        in two renames, where a kill in between leaves the previous folder that the next run restores
        (:func:`restore`). The previous one is removed only afterwards."""
        if not os.path.lexists(self.target):
            os.rename(self.path, self.target)
        elif exchange(self.path, self.target):  # the previous folder is now at the staging path
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tl-old-", dir=self.target.parent))
            try:
                os.rename(self.target, old / self.target.name)
            except BaseException:
                old.rmdir()
                raise
            try:
                os.rename(self.path, self.target)
            except BaseException:
                os.rename(old / self.target.name, self.target)
                old.rmdir()
                raise
            shutil.rmtree(old, ignore_errors=True)
        self._path = None


AT_FDCWD = -100
RENAME_EXCHANGE = 2


def exchange(first: Path, second: Path) -> bool:
    """Swap the two existing paths in one step (Linux's renameat2 with RENAME_EXCHANGE); False where the system or
    its file system cannot, and the caller renames twice instead."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    number = ctypes.get_errno()
    if number in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(number, os.strerror(number), str(second))


def restore(folder: Path) -> list[str]:
    """Put back the entries of ``folder`` that a run killed between the two renames of :meth:`StagedDir.publish`
    left only in its ``.{name}.tl-old-*`` folder; call with the folder's lock held. Returns the names restored."""
    restored = []
    for old in folder.glob(".*.tl-old-*"):
        name = old.name[1:old.name.rindex(".tl-old-")]
        kept = old / name
        if _plain(name) and kept.is_dir() and not kept.is_symlink() and not os.path.lexists(folder / name):
            os.rename(kept, folder / name)
            restored.append(name)
    return restored


def _plain(name: str) -> bool:
    """Whether ``name`` names an entry of a folder (no separator, not ``.`` or ``..``)."""
    return bool(name) and "/" not in name and os.sep not in name and name not in (".", "..")


class StagedFiles(_Staging):
    """A hidden folder inside ``target`` whose entries replace the ones of the same name in ``target`` on
    :meth:`publish` (a folder entry replaces a folder whole). Leaving without publishing removes it."""

    PREFIX = ".reports.tl-partial-"

    def __init__(self, target: str | Path, stale: Iterable[str] = ()) -> None:
        super().__init__(target)
        self.stale = tuple(stale)
        """Names of entries of an earlier publication: removed when this one does not replace them."""

    def _parent(self) -> Path:
        return self.target  # inside it: its entries are replaced one by one

    def publish(self) -> None:
        fresh = {entry.name for entry in self.path.iterdir()}
        for name in self.stale:
            old = self.target / name
            if name not in fresh and "/" not in name and name not in (".", "..") and not old.is_symlink():
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                elif old.exists():
                    old.unlink()
        for entry in sorted(self.path.iterdir()):
            destination = self.target / entry.name
            if destination.is_dir() and not destination.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tl-old-", dir=self.target))
                os.rename(destination, old / entry.name)
                os.rename(entry, destination)
                shutil.rmtree(old, ignore_errors=True)
            else:
                if entry.is_file():
                    flush(entry)
                os.replace(entry, destination)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, so that moving outputs into place is never cut in half.

    The handlers are swapped for ones that remember the signal, and the one tl run installed is called when
    the block ends. (A signal mask would not do: the kernel hands a signal the main thread blocks to another
    thread, a framework's for instance, and Python runs the handler in the main thread all the same.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    handlers: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            handlers[signum] = signal.signal(signum, lambda number, frame: received.append(number))
        except (OSError, ValueError):
            pass
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        if received:
            handler = handlers.get(received[0])
            if callable(handler):
                handler(received[0], None)  # the handler tl run installed: it raises the interrupt
            else:
                signal.raise_signal(received[0])  # its default action (or none, where it is ignored)


def flush(path: str | Path) -> None:
    """Make sure ``path``'s content is on disk (fsync) before a rename makes it visible: after a power loss,
    a published file is whole, not empty."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def staged_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as JSON to a hidden temporary file beside ``path``; return its path.

    ``os.replace(returned, path)`` publishes it; the caller removes it if it never does.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tl-partial-", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename."""
    os.replace(staged_json(path, data), path)


_UMASK: list[int] = []


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only set it, and setting it while
    other threads create files would give them wrong permissions)."""
    if not _UMASK:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                _UMASK.append(next(int(line.split()[1], 8) for line in status if line.startswith("Umask:")))
        except (OSError, StopIteration, ValueError, IndexError):  # not Linux: read it once, the only way there is
            mask = os.umask(0o022)
            os.umask(mask)
            _UMASK.append(mask)
    return _UMASK[0]


def publish_together(results_file: Path, results: Any, moves: Iterable[Callable[[], None]], what: str,
                     after: Iterable[Callable[[], None]] = ()) -> None:
    """How every command publishes: ``results`` (results.json's content) is staged beside ``results_file`` and
    synced, then each of ``moves`` (a staged folder's ``publish``, a ``os.replace``) runs and results.json
    replaces the old one last, then ``after`` runs (removing what only an unfinished command needs), with Ctrl-C
    and SIGTERM held until all of it is done. A failure leaves the earlier outputs as they were and says so
    about ``what``."""
    staged = staged_json(results_file, results)
    try:
        with signals_deferred():
            for move in moves:
                move()
            os.replace(staged, results_file)
            for then in after:
                then()
    except OSError as exc:
        raise OutputError(f"cannot write {what}: {exc}; earlier outputs are unchanged") from None
    finally:
        staged.unlink(missing_ok=True)
