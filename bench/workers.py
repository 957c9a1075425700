"""Feature extraction with 1 and with 2 local worker processes, for each framework.

    python bench/workers.py                  # 500 images, MobileNetV2 alpha 0.35 at 128 px, both frameworks
    python bench/workers.py --images 2000 --input-size 224 --alpha 1.0 --framework torch

Each run is `tl run` with 1 epoch on the same generated JPEGs (bench/benchmark.py's dataset),
alone, then as 2 workers meeting on 127.0.0.1 (torch: torchrun's variables; keras: TF_CONFIG).
For keras it also runs one process mirrored over 2 devices ("distribute": "mirrored", the CPU
split into 2 logical devices, as a machine with 2 GPUs has 2 devices). Prints, per framework: the
training images' extraction throughput (images / the slowest worker's extraction time, from each
worker's final progress line), and the whole run's wall time. On a machine with fewer cores than workers x the framework's threads, 2 workers share
the same cores and show the overhead of the collectives, not a speed-up.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.benchmark import make_dataset  # noqa: E402

TWO_CPU_DEVICES = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tlcli.main import entry
entry()
"""
"""``tl`` in one process whose CPU TensorFlow sees as 2 devices."""

FEATURES = re.compile(r"features of training images (\d+)/(\d+) \[=+\] - ([\d,.]+) img/s")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environments(framework, workers):
    if workers == 1:
        return [{}]
    if framework == "keras":
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(workers)]
        return [{"TF_CONFIG": json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})}
                for i in range(workers)]
    port = str(free_port())
    return [{"RANK": str(i), "LOCAL_RANK": "0", "WORLD_SIZE": str(workers), "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": port} for i in range(workers)]


def run(framework, workers, dataset, args, workdir, mirrored=False):
    """Wall time and extraction throughput of one run of ``workers`` processes (or, ``mirrored``, of one process
    on 2 logical devices)."""
    config = {"framework": framework, "distribute": "mirrored" if mirrored else "auto", "dataset_training_dir": str(dataset / "training"),
              "dataset_validation_dir": str(dataset / "validation"), "weights": None,
              "mobilenet_alpha": args.alpha, "input_tensor_size": args.input_size, "epochs": 1,
              "batch_size": args.batch_size, "seed": 0, "worker_timeout": 120}
    processes = []
    started = time.monotonic()
    command = [sys.executable, "-c", TWO_CPU_DEVICES, "run"] if mirrored else [sys.executable, "-m", "tlcli", "run"]
    for rank, environment in enumerate(environments(framework, workers)):
        root = workdir / f"{framework}-{workers}-{rank}{'-mirrored' if mirrored else ''}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "configuration.json").write_text(json.dumps({**config, "output_dir": "out",
                                                              "evaluate_result_dir": "out"}))
        processes.append(subprocess.Popen(command, cwd=root,
                                          env={**os.environ, "PYTHONPATH": str(REPO), **environment},
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate()[0] for process in processes]
    wall = time.monotonic() - started
    seconds, total = [], 0
    for process, output in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise SystemExit(f"{framework}, {workers} worker(s) failed:\n{output[-3000:]}")
        done, _, rate = FEATURES.findall(output)[-1]
        seconds.append(int(done) / float(rate.replace(",", "")))
        total += int(done)
    return {"wall": wall, "throughput": total / max(seconds), "images": total}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--framework", choices=("keras", "torch", "both"), default="both")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tl-workers-"))
    dataset = make_dataset(workdir / "data", args.images)
    frameworks = ("keras", "torch") if args.framework == "both" else (args.framework,)
    print(f"{args.images} images, MobileNetV2 alpha {args.alpha} at {args.input_size} px, batch {args.batch_size}, "
          f"{os.cpu_count()} cores; workdir {workdir}", flush=True)
    rows = []
    for framework in frameworks:
        for workers in (1, 2):
            print(f"[{framework}] {workers} worker(s) ...", flush=True)
            rows.append((framework, f"{workers} worker{'s' if workers > 1 else ''}",
                         run(framework, workers, dataset, args, workdir)))
        if framework == "keras":
            print("[keras] 1 process mirrored over 2 devices ...", flush=True)
            rows.append((framework, "mirrored, 2 devices", run(framework, 1, dataset, args, workdir, mirrored=True)))
    print()
    print(f"{'framework':<10} {'how':>20} {'extraction img/s':>17} {'run wall s':>11} {'vs 1 worker':>12}")
    for framework, how, result in rows:
        alone = next(r for f, h, r in rows if f == framework and h == "1 worker")
        print(f"{framework:<10} {how:>20} {result['throughput']:>17.1f} {result['wall']:>11.1f} "
              f"{result['throughput'] / alone['throughput']:>11.2f}x")
    print(f"[load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}]")


if __name__ == "__main__":
    main()
