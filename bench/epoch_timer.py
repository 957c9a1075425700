"""A tl plugin (loaded with `tl run -p bench.epoch_timer`) that records each epoch's duration.

It writes ``epoch_seconds.json`` into output_dir: the benchmark's per-epoch figure for tl,
measured through the same observer hooks any plugin can use.
"""

import json
import time

from tlcore.hookspecs import hookimpl

_started = {}
_seconds = []


@hookimpl
def tl_on_epoch_start(epoch):
    _started[epoch] = time.monotonic()


@hookimpl
def tl_on_epoch_end(config, epoch, epochs):
    _seconds.append(time.monotonic() - _started[epoch])
    if epoch == epochs:
        (config.output_dir / "epoch_seconds.json").write_text(json.dumps(_seconds))
