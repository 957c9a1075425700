"""Writing outputs so that a failed or interrupted run never leaves half of one.

A folder output is built in a hidden staging folder beside its destination and
renamed into place only when complete (swapped in one step where the system can);
a file output is written to a temporary file and renamed; the reports are moved
into place as one set, with a journal that lets the next run finish a set a kill
cut short. tl replaces or removes only what it wrote: a folder holding its
marker (saved_model's tl_run.json), and in evaluate_result_dir the files its
record (:data:`OWNED`) lists unchanged.
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
from typing import Any, Callable, Iterable, Iterator, Mapping, Self

from tlcore.errors import OutputError

MARKER = "tl_run.json"
"""The file that marks a saved_model folder as written by tl (and so replaceable)."""
OWNED = ".tl-owned.json"
"""In a folder tl publishes files into (``evaluate_result_dir``): every file tl wrote there, with its size and
modification time, so that a file the user added or changed is never replaced or removed."""
JOURNAL = ".tl-publishing.json"
"""In such a folder while a set of files is moved into place: what is moved, so that the next run finishes it."""


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
    left only in its ``.{name}.tl-old-*`` folder, and finish the publishing that a run killed while moving a set of
    files (:class:`StagedFiles`) began; call with the folder's lock held. Returns the names restored."""
    restored = []
    journal = folder / JOURNAL
    if journal.is_file():
        try:
            plan = json.loads(journal.read_text(encoding="utf-8"))
            _move_set(folder, plan)
        except (ValueError, KeyError, TypeError):
            pass  # not one tl wrote: the staging folders are removed as leftovers, the files stay as they are
        except OSError as exc:
            raise OutputError(f"cannot finish publishing what an interrupted run began in {folder}: {exc}; make the "
                              "folder writable and run again") from None
        journal.unlink(missing_ok=True)
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


def stamps(folder: Path, name: str) -> dict[str, list[int]]:
    """The entry ``name`` of ``folder`` as :data:`OWNED` records it: its path relative to ``folder`` -> [size,
    modification time in ns] for each file, [] for each folder (every file and folder under a folder)."""
    top = folder / name
    if not os.path.lexists(top):
        return {}
    found = {name: _stamp(top)}
    if top.is_dir() and not top.is_symlink():
        for root, folders, files in os.walk(top):
            for entry in [*folders, *files]:
                path = Path(root, entry)
                found[path.relative_to(folder).as_posix()] = _stamp(path)
    return found


def _stamp(path: Path) -> list[int]:
    status = os.lstat(path)
    if path.is_dir() and not path.is_symlink():
        return []
    return [status.st_size, status.st_mtime_ns] if path.is_file() and not path.is_symlink() else [-1, -1]


ADOPT_SECONDS = 60
"""How long after an earlier tl's run record a file it lists may have changed and still count as that run's."""


def adopt_earlier(folder: Path, record_file: Path) -> list[str]:
    """Take over what a tl from before :data:`OWNED` published into ``folder``: the entries its run record
    (``record_file``, saved_model's tl_run.json) lists as reports, and results.json, where every file of them was
    last changed no later than :data:`ADOPT_SECONDS` after that record was written (a file the user changed later
    stays the user's). Nothing when ``folder`` has its record already, or the run record is of another folder.
    Returns the names taken over."""
    if os.path.lexists(folder / OWNED):
        return []
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        if Path(record["configuration"]["evaluate_result_dir"]) != folder:
            return []
        names = {str(name).split("/", 1)[0] for name in record.get("reports", [])} | {"results.json"}
        limit = record_file.stat().st_mtime_ns + ADOPT_SECONDS * 10**9
    except (OSError, ValueError, KeyError, TypeError):
        return []
    files: dict[str, list[int]] = {}
    adopted = []
    for name in sorted(name for name in names if _plain(name)):
        found = stamps(folder, name)
        if found and all(not stamp or 0 <= stamp[1] <= limit for stamp in found.values()):
            files.update(found)
            adopted.append(name)
    if adopted:
        write_json_atomic(folder / OWNED, {"files": files, "published": adopted})
    return adopted


def owned(folder: Path) -> dict[str, Any]:
    """``folder``'s :data:`OWNED` record: ``files`` (relative path -> stamp) and ``published`` (the entries the
    last run published); empty when there is none or it cannot be read."""
    try:
        record = json.loads((folder / OWNED).read_text(encoding="utf-8"))
        return {"files": dict(record["files"]), "published": [str(name) for name in record["published"]]}
    except (OSError, ValueError, KeyError, TypeError):
        return {"files": {}, "published": []}


def not_owned(folder: Path, name: str, files: Mapping[str, Any]) -> Path | None:
    """The first file or folder of the entry ``name`` of ``folder`` that tl did not write (or that changed since it
    did), or None when all of it is tl's (or it does not exist)."""
    for relative, stamp in stamps(folder, name).items():
        if files.get(relative) != stamp:
            return folder / relative
    return None


def check_owned(folder: Path, names: Iterable[str], key: str = "evaluate_result_dir") -> None:
    """Refuse to write ``names`` into ``folder`` where one of them exists and is not (all) tl's own.

    :raises OutputError: naming the file, and how to let tl write there.
    """
    files = owned(folder)["files"]
    for name in names:
        found = not_owned(folder, name, files)
        if found is not None:
            raise OutputError(f"{found} was not written by tl (or was changed since), and tl replaces only its own "
                              f'files; move it away or delete it to let tl write {name}, or choose another "{key}"')


def record_owned(folder: Path, names: Iterable[str]) -> None:
    """Add the entries ``names`` of ``folder``, as they are now, to its :data:`OWNED` record."""
    record = owned(folder)
    names = list(names)
    files = {path: stamp for path, stamp in record["files"].items() if path.split("/", 1)[0] not in names}
    for name in names:
        files.update(stamps(folder, name))
    write_json_atomic(folder / OWNED, {"files": files, "published": record["published"]})


class StagedFiles(_Staging):
    """A hidden folder inside ``target`` whose entries are published into ``target`` as one set on :meth:`publish`
    (a folder entry replaces a folder whole), with their :data:`OWNED` record. Leaving without publishing removes
    it.

    Only what tl wrote is replaced or removed: :meth:`check` refuses an entry that would replace a file the user
    added or changed, and an entry of the previous publication that this one does not write again is removed only
    when all of it is still tl's.
    """

    PREFIX = ".reports.tl-partial-"

    def _parent(self) -> Path:
        return self.target  # inside it: its entries are moved into place from the same file system

    def _names(self) -> list[str]:
        return sorted(entry.name for entry in self.path.iterdir())

    def check(self) -> list[Path]:
        """Refuse (:class:`OutputError`) when a staged entry would replace something in ``target`` that tl did not
        write; return the files of the previous publication's entries, not written again, that hold something of
        the user's: they are left alone (the caller says so)."""
        check_owned(self.target, self._names())
        record = owned(self.target)
        kept = [not_owned(self.target, name, record["files"]) for name in self._stale(record)]
        return [path for path in kept if path is not None]

    def _stale(self, record: Mapping[str, Any]) -> list[str]:
        fresh = set(self._names())
        return [name for name in record["published"] if _plain(name) and name not in fresh and name != OWNED
                and os.path.lexists(self.target / name)]

    def publish(self) -> None:
        """Move the staged entries into ``target`` and remove the previous publication's entries this one does not
        write again (those that are all tl's); a journal makes the next run finish a set that a kill cut short."""
        record = owned(self.target)
        names = self._names()
        removed = [name for name in self._stale(record) if not_owned(self.target, name, record["files"]) is None]
        files = {path: stamp for path, stamp in record["files"].items()
                 if path.split("/", 1)[0] not in {*names, *removed}}
        for name in names:
            if (self.path / name).is_file():
                flush(self.path / name)
            files.update(stamps(self.path, name))
        write_json_atomic(self.path / OWNED, {"files": files, "published": names})
        backup = Path(tempfile.mkdtemp(prefix=".reports.tl-old-", dir=self.target))
        plan = {"staging": self.path.name, "backup": backup.name, "place": [*names, OWNED], "remove": removed}
        write_json_atomic(self.target / JOURNAL, plan)
        try:
            _move_set(self.target, plan)
        except BaseException:
            _undo_set(self.target, plan)
            raise
        (self.target / JOURNAL).unlink()
        shutil.rmtree(backup, ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)
        self._path = None


def _undo_set(target: Path, plan: Mapping[str, Any]) -> None:
    """Put back what :func:`_move_set` moved before it failed (an error, not a kill): the new entries return to the
    staging folder, the previous ones from the backup folder."""
    staging, backup = target / str(plan["staging"]), target / str(plan["backup"])
    for name in plan["place"]:
        if not os.path.lexists(staging / name) and os.path.lexists(target / name):
            os.rename(target / name, staging / name)
    for entry in backup.iterdir():
        os.rename(entry, target / entry.name)
    (target / JOURNAL).unlink(missing_ok=True)
    backup.rmdir()


def _move_set(target: Path, plan: Mapping[str, Any]) -> None:
    """Carry out (or finish) the publishing ``plan`` of :meth:`StagedFiles.publish`: each entry of ``remove`` and
    each one ``place`` replaces goes to the backup folder, then each entry of ``place`` moves from the staging
    folder into ``target``. Every step checks what is done already, so running it again after a kill finishes it."""
    staging, backup = target / str(plan["staging"]), target / str(plan["backup"])
    names = [str(name) for name in plan["place"]]
    removed = [str(name) for name in plan["remove"]]
    if not all(_plain(name) for name in [*names, *removed, staging.name, backup.name]) or not backup.is_dir():
        raise ValueError("not a plan tl wrote")
    for name in [*names, *removed]:
        waiting = os.path.lexists(staging / name) if name in names else True
        if waiting and os.path.lexists(target / name) and not os.path.lexists(backup / name):
            os.rename(target / name, backup / name)
    for name in names:
        if os.path.lexists(staging / name):
            os.rename(staging / name, target / name)


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


def publish_together(results_file: Path | None, results: Any, moves: Iterable[Callable[[], None]], what: str,
                     after: Iterable[Callable[[], None]] = ()) -> None:
    """How every command publishes: ``results`` (results.json's content) is staged beside ``results_file`` and
    synced, then each of ``moves`` (a staged folder's ``publish``, a ``os.replace``) runs and results.json
    replaces the old one last (and is recorded as tl's, :data:`OWNED`), then ``after`` runs (removing what only an
    unfinished command needs), with Ctrl-C and SIGTERM held until all of it is done. Without ``results_file``,
    results.json is one of the files a move publishes. A failure before the first move leaves the earlier outputs
    as they were and says so about ``what``.

    :raises OutputError: when results.json exists and is not tl's, or a move fails.
    """
    if results_file is not None:
        check_owned(results_file.parent, [results_file.name])
    staged = staged_json(results_file, results) if results_file is not None else None
    done = 0
    try:
        with signals_deferred():
            for move in moves:
                move()
                done += 1
            if results_file is not None and staged is not None:
                os.replace(staged, results_file)
                record_owned(results_file.parent, [results_file.name])
            for then in after:
                then()
    except OSError as exc:
        state = "earlier outputs are unchanged" if not done else "only part of them was published; run again"
        raise OutputError(f"cannot write {what}: {exc}; {state}") from None
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
