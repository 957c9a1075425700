"""How soon each command says something, and its longest silence: the first line within 1.2 s, and no step
over 5 s without a line (on a pipe, not a terminal: the harder case), optionally on a busy machine.

    python bench/responsiveness.py                 # tl run, check, predict, quantize on examples/photos
    python bench/responsiveness.py --busy 2        # the same with 2 busy processes beside it

Prints, per command: seconds to its first line, its longest silence and the line that ended it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO / "examples" / "photos"
TL = [sys.executable, "-m", "tlcli"]


def timed_lines(command: list[str], cwd: Path) -> tuple[int, list[tuple[float, str, str]]]:
    """Run ``command``; every line it prints, stdout's and stderr's, with the seconds since its start."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str, str]] = []
    lock = threading.Lock()

    def read(stream: object, name: str) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with lock:
                lines.append((time.monotonic() - started, name, line.rstrip("\n")))

    readers = [threading.Thread(target=read, args=(process.stdout, "out")),
               threading.Thread(target=read, args=(process.stderr, "err"))]
    for reader in readers:
        reader.start()
    code = process.wait()
    for reader in readers:
        reader.join()
    lines.append((time.monotonic() - started, "end", f"(exit {code})"))
    return code, sorted(lines)


def busy(stop: object) -> None:
    while not stop.is_set():  # type: ignore[attr-defined]
        sum(i * i for i in range(10_000))


def report(name: str, code: int, lines: list[tuple[float, str, str]]) -> None:
    first = lines[0][0]
    gaps = [(after[0] - before[0], after) for before, after in zip(lines, lines[1:])]
    gap, ending = max(gaps, default=(0.0, lines[0]))
    print(f"{name:<28} exit {code}  first line {first:5.2f} s  longest silence {gap:5.2f} s, ended by "
          f"[{ending[1]}] {ending[2][:70]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, default=0, help="busy processes running beside each command")
    parser.add_argument("--framework", default="keras", choices=["keras", "torch"])
    parser.add_argument("--show", action="store_true", help="print every line with its time")
    args = parser.parse_args()
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=busy, args=(stop,), daemon=True) for _ in range(args.busy)]
    for worker in workers:
        worker.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            shutil.copytree(PHOTOS / "dataset", root / "dataset")
            settings = {"dataset_training_dir": "dataset/training", "dataset_validation_dir": "dataset/validation",
                        "framework": args.framework, "epochs": 2, "weights": None, "mobilenet_alpha": 0.35,
                        "input_tensor_size": 96, "output_dir": "out", "evaluate_result_dir": "out/evaluation"}
            (root / "configuration.json").write_text(json.dumps(settings))
            commands = {
                "tl run": [*TL, "run", "configuration.json"],
                "tl check": [*TL, "check", "configuration.json"],
                "tl predict": [*TL, "predict", "out/saved_model", "dataset/validation"],
                "tl predict --json": [*TL, "predict", "out/saved_model", "dataset/validation", "--json"],
                "tl quantize": [*TL, "quantize", "configuration.json", "--block", "imx500.converter"],
            }
            print(f"{args.framework}, {args.busy} busy process(es) beside each command, output to a pipe")
            for name, command in commands.items():
                code, lines = timed_lines(command, root)
                report(name, code, lines)
                if args.show or code:
                    for seconds, stream, text in lines[:30]:
                        print(f"    {seconds:6.2f} [{stream}] {text[:110]}")
    finally:
        stop.set()
        for worker in workers:
            worker.join()


if __name__ == "__main__":
    main()
