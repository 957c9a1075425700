"""Run a command and print its wall time and peak resident memory (of it and its children) as JSON.

    python bench/measure.py OUTPUT.json -- COMMAND ...
"""

import json
import resource
import subprocess
import sys
import time


def main():
    out, command = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(out, "w") as handle:
        json.dump({"wall_seconds": wall, "peak_rss_mib": peak_kib / 1024, "returncode": completed.returncode,
                   "stdout": completed.stdout, "stderr": completed.stderr}, handle)


if __name__ == "__main__":
    main()
