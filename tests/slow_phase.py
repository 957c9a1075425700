"""A test plugin that holds a run inside one phase, so a test can interrupt it exactly there.

``TL_TEST_SLOW_HOOK`` names the hook; its implementation here prints ``IN <hook>``,
sleeps up to a minute, and answers nothing, so the built-in does the real work after.
``TL_TEST_SIGNAL_FROM_THREAD`` (``SIGINT`` or ``SIGTERM``) has another thread receive that signal meanwhile.
"""

import os
import signal
import sys
import threading
import time

from tlcore.hookspecs import hookimpl

HOOK = os.environ.get("TL_TEST_SLOW_HOOK", "")
SIGNAL_FROM_THREAD = os.environ.get("TL_TEST_SIGNAL_FROM_THREAD", "")
"""A signal name: while held, another thread of the process receives it, as the kernel may arrange."""


def _receive_in_another_thread(signum):
    time.sleep(0.5)
    print("SIGNALLED", flush=True)
    signal.pthread_kill(threading.get_ident(), signum)


def _hold(name):
    if name == HOOK:
        print(f"IN {name}", flush=True)
        sys.stdout.flush()
        if SIGNAL_FROM_THREAD:
            signum = getattr(signal, SIGNAL_FROM_THREAD)
            threading.Thread(target=_receive_in_another_thread, args=(signum,), daemon=True).start()
        time.sleep(60)


@hookimpl(tryfirst=True)
def tl_load_dataset():
    _hold("tl_load_dataset")


@hookimpl(tryfirst=True)
def tl_load_base_model():
    _hold("tl_load_base_model")


@hookimpl(tryfirst=True)
def tl_on_epoch_end(epoch):
    if epoch == 1:
        _hold("tl_on_epoch_end")


@hookimpl(tryfirst=True)
def tl_save_model(path):
    _hold("tl_save_model")


@hookimpl(tryfirst=True)
def tl_evaluate():
    _hold("tl_evaluate")
