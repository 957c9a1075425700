"""Run a command and print its wall time and peak resident memory (of it and its children) as JSON.

    python bench/measure.py OUTPUT.json -- COMMAND ...

Also records the load averages at the end (``load_average``: 1, 5, 15 minutes) and how many
cores other processes kept busy meanwhile (``other_cpu``: the machine's busy CPU time from
/proc/stat minus the command's own, per second of wall time; None where /proc/stat is absent),
so that a figure taken on a busy machine can be recognised and measured again.
"""

import json
import os
import resource
import subprocess
import sys
import time


def busy_seconds():
    """CPU seconds the whole machine has spent busy (not idle or waiting for I/O) since boot."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main():
    out, command = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    busy_before = busy_seconds()
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - started
    busy_after = busy_seconds()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = usage.ru_maxrss
    own = usage.ru_utime + usage.ru_stime
    other = None if busy_before is None else max(0.0, (busy_after - busy_before - own) / wall)
    with open(out, "w") as handle:
        json.dump({"wall_seconds": wall, "peak_rss_mib": peak_kib / 1024, "returncode": completed.returncode,
                   "cpu_seconds": own, "other_cpu": other, "load_average": list(os.getloadavg()),
                   "stdout": completed.stdout, "stderr": completed.stderr}, handle)


if __name__ == "__main__":
    main()
