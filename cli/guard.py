"""How every tl command ends: one line for an error, exit codes 2/1, 130 for Ctrl-C and 143 for SIGTERM, a
traceback only with ``--debug``; and signals that stop the command whichever thread the kernel hands them to."""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import click

from tlcore.calls import describe_exception
from tlcore.errors import TLError, one_line
from tlcore.text import for_terminal

EXIT_INTERRUPTED = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def fresh_line() -> str:
    """On a terminal, end a progress line drawn in place before a message (elsewhere nothing is needed)."""
    return "\n" if sys.stderr.isatty() else ""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def _signals_wake_the_main_thread() -> Iterator[None]:
    """Make Ctrl-C and SIGTERM stop a main thread that waits in a blocking call.

    The kernel hands a process's signal to any of its threads that does not block it: with a framework's thread
    pools running, often not the main one. Python then only marks the signal, and the main thread, asleep or in
    a system call, would not see it until that call returns (minutes, when it is a plugin's wait). Python
    writes every signal's number to the wakeup file; a watcher thread reads it and sends the main thread a
    signal of its own (SIGURG, handled by doing nothing), which ends the call so the real handler runs.
    """
    if not hasattr(signal, "pthread_kill") or threading.current_thread() is not threading.main_thread():
        yield
        return

    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        previous_urg = signal.signal(signal.SIGURG, lambda signum, frame: None)
    except ValueError:  # another wakeup file is in use (an event loop's): leave it alone
        os.close(read)
        os.close(write)
        yield
        return
    main_thread = threading.get_ident()
    wanted = {signal.SIGINT, signal.SIGTERM}

    def watch() -> None:
        while data := os.read(read, 64):
            if wanted.intersection(data):
                signal.pthread_kill(main_thread, signal.SIGURG)
        os.close(read)

    threading.Thread(target=watch, name="tl-signal-watch", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGURG, previous_urg)
        os.close(write)  # the watcher reads the end of the file and stops


@contextmanager
def guarded(debug: bool, outputs: str) -> Iterator[None]:
    """Run a command's body the way every tl command ends: one line for an error, exit codes 2/1,
    130 for Ctrl-C and 143 for SIGTERM, a traceback only with ``--debug``.

    ``outputs`` names what the command publishes, for the message after an interrupt.
    """
    previous_handlers = {signal.SIGINT: signal.getsignal(signal.SIGINT),
                         signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated)}
    try:
        with _signals_wake_the_main_thread():
            yield
        for signum in (signal.SIGINT, signal.SIGTERM):  # done: a late Ctrl-C must not turn success into failure
            signal.signal(signum, signal.SIG_IGN)
    except KeyboardInterrupt as stop:
        word, code = ("Terminated", 128 + signal.SIGTERM) if isinstance(stop, Terminated) else ("Interrupted", EXIT_INTERRUPTED)
        if getattr(stop, "result", None) is not None:
            click.echo(f"{fresh_line()}{word} after the outputs were written: {outputs} are complete.", err=True)
        else:
            resume = getattr(stop, "resume_epoch", None)
            hint = f" `tl run --resume` continues after epoch {resume}." if resume else ""
            click.echo(f"{fresh_line()}{word}: stopped before finishing; no output was written and earlier outputs "
                       f"are unchanged.{hint}", err=True)
        sys.exit(code)
    except TLError as exc:
        if debug:
            raise
        click.echo(f"{fresh_line()}Error: {for_terminal(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug in tl itself: still one line, the traceback on request
        if debug:
            raise
        click.echo(f"{fresh_line()}Error: unexpected {one_line(describe_exception(exc))}; run again with --debug for the "
                   "traceback, and please report it", err=True)
        sys.exit(1)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
