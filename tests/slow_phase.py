"""A test plugin that holds a run inside one phase, so a test can interrupt it exactly there.

``TL_TEST_SLOW_HOOK`` names the hook; its implementation here prints ``IN <hook>``,
sleeps up to a minute, and answers nothing, so the built-in does the real work after.
"""

import os
import sys
import time

from tlcore.hookspecs import hookimpl

HOOK = os.environ.get("TL_TEST_SLOW_HOOK", "")


def _hold(name):
    if name == HOOK:
        print(f"IN {name}", flush=True)
        sys.stdout.flush()
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
