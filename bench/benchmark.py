"""tl against the plain-Keras and the plain-PyTorch way, side by side, on generated JPEG datasets.

    python bench/benchmark.py                            # MobileNetV2 at 224 px: about 1.5 hours for keras
                                                         # on 2 cores (estimated), 2.5 with torch too
    python bench/benchmark.py --quick --framework keras  # 96 px, alpha 0.35, fewer runs: about 15 minutes
    python bench/benchmark.py --framework torch          # one framework only (keras, torch or both; default both)
    python bench/benchmark.py --only speed,decode        # some sections: speed, memory, decode, accuracy, startup
    python bench/benchmark.py --images 2000              # other sizes for the speed section (default 500,5000)

Prints, per framework, tl's value, the reference's value and their ratio (or difference) for each figure:
- speed: wall time for 10 epochs with a frozen base (tl at its default settings: features computed
  once) at 500 and at 5000 images (goals: ratio tl / reference <= 0.15 and <= 0.1; --quick keeps both
  sizes, its reference takes about 2 minutes on 5000 images), Top-1 and peak RSS of those runs,
  per-epoch throughput when features cannot be cached (augmentation ["flip"] with
  "augmentation_views": 0, against the reference's random horizontal flip);
- memory: peak resident memory of tl for a small and a 10x larger dataset;
- decode (keras only): feature-extraction throughput on small (256x256) and on 12-megapixel
  (4000x3000, about 4 MB) JPEGs, warm, each program's own way (bench/sections.py); goal: tl's 12 MP
  rate >= 0.7x its small-JPEG rate;
- accuracy (keras only): mean Top-1 over folds and seeds on the generated stripes, scikit-image's
  textures and the example photographs (examples/photos; 4-fold cross-validation, its validation
  split being 32 images), tl at its default settings (augmentation_views as tl decides; the runs'
  view counts are printed) against the reference recipe without augmentation, the same folds, base
  and seeds (bench/reference.py --seed) for both; goals: tl >= reference, and >= reference + 2
  points on the small datasets (textures, example photos). --quick runs fewer folds and seeds;
- startup: CLI start-up time (median of 11; limit 1.2 s).
Then a summary of the figures with goals: tl, reference, ratio or difference, goal, met (yes/no),
and the total time.

Keras: tl against bench/reference.py (image_dataset_from_directory + model.fit). The base
is MobileNetV2 with random He-scaled weights (ImageNet weights cannot be downloaded here;
--weights imagenet uses them if Keras has them cached), saved once as .h5 and loaded by
both tl ("source_keras_model") and the reference, so both train on the same features.

Torch: tl with "framework": "torch" against bench/torch_reference.py (ImageFolder +
DataLoader + a loop forwarding through the whole model every epoch). The base is
torchvision's mobilenet_v2(width_mult=alpha) with tl's own random initialisation
(tlplugins.torch.base_model.random_initialise; --weights imagenet: torchvision's ImageNet
weights, if cached), saved once with torch.save(model.state_dict()) and loaded by both
tl ("weights": that file) and the reference.

Peak RSS is that of the largest single process (bench/measure.py): the torch
reference's DataLoader worker processes are not added to its main process.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import sections  # noqa: E402
from bench.table import Row, print_summary, print_table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("speed", "memory", "decode", "accuracy", "startup")
GOALS = {500: 0.15, 5000: 0.1}
"""Issue goals for the 10-epoch wall-time ratio tl / reference, by dataset size."""
STARTUP_LIMIT = 1.2
"""Seconds a CLI command may take to start (the target is 0.3 s)."""
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}


def make_dataset(root, images, classes=5, size=256, seed=0):
    """``images`` JPEGs (80 % training, 20 % validation) of ``classes`` striped, noisy patterns."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    if (root / "labels.json").exists():
        return root
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for index in range(images):
        label = index % classes
        split = "validation" if (index // classes) % 5 == 4 else "training"
        angle = np.pi * label / classes + rng.normal(0, 0.1)
        frequency = 0.05 + 0.03 * label
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * frequency + rng.uniform(0, 6.3))
        colour = np.array([60 + 35 * label, 200 - 30 * label, 120 + 20 * (label % 2)], dtype=np.float32)
        pixels = colour + 60 * stripes[..., None] + rng.normal(0, 30, (size, size, 3))
        folder = root / split / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(folder / f"{index:06d}.jpg", quality=90)
    (root / "labels.json").write_text(json.dumps({f"class_{i}": i for i in range(classes)}))
    return root


def make_base(path, size, alpha, weights, seed=0):
    """MobileNetV2 without top, saved as .h5: ImageNet weights, or random He-scaled ones."""
    import numpy as np
    import tensorflow as tf

    if Path(path).exists():
        return path
    model = tf.keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=weights
    )
    if weights is None:  # Keras' default initialisation makes a frozen MobileNetV2's features vanish
        rng = np.random.default_rng(seed)
        for layer in model.layers:
            kernel = getattr(layer, "depthwise_kernel", None) if isinstance(
                layer, tf.keras.layers.DepthwiseConv2D) else getattr(layer, "kernel", None)
            if kernel is not None:
                fan_in = int(np.prod(kernel.shape[:-1])) if kernel is getattr(layer, "kernel", None) else int(
                    np.prod(kernel.shape[:2]))
                kernel.assign(rng.normal(0, np.sqrt(2 / fan_in), kernel.shape).astype("float32"))
    model.save(path)
    return path


def make_torch_base(path, size, alpha, weights, seed=0):
    """torchvision's MobileNetV2 state dict: ImageNet weights, or tl's own random initialisation
    (made in a separate process, which keeps torch out of this one)."""
    if not Path(path).exists():
        code = f"from bench.benchmark import save_torch_base; save_torch_base({str(path)!r}, {size}, {alpha}, {weights!r}, {seed})"
        subprocess.run([sys.executable, "-c", code], env=ENV, check=True, cwd=REPO)
    return path


def save_torch_base(path, size, alpha, weights, seed):
    import torch
    import torchvision

    from tlplugins.torch.base_model import random_initialise

    model = torchvision.models.mobilenet_v2(weights=None, width_mult=alpha)
    if weights is None:
        model.classifier = torch.nn.Identity()  # the features, as tl builds the base
        random_initialise(model, size, seed)
    else:
        model.load_state_dict(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2.get_state_dict(progress=False))
    torch.save(model.state_dict(), path)


def write_config(folder, dataset, base, args, **extra):
    """tl's configuration: the Keras base as ``source_keras_model``, or with ``framework="torch"``
    the torchvision MobileNetV2 with ``weights`` = the state-dict file."""
    folder.mkdir(parents=True, exist_ok=True)
    if extra.get("framework") == "torch":
        model = {"weights": str(base), "mobilenet_alpha": args.alpha}
    else:
        model = {"source_keras_model": str(base)}
    config = {
        **model, "dataset_training_dir": str(dataset / "training"),
        "dataset_validation_dir": str(dataset / "validation"), "batch_size": args.batch_size,
        "input_tensor_size": args.input_size, "epochs": args.epochs, "output_dir": str(folder / "out"),
        "evaluate_result_dir": str(folder / "out"), "seed": 0, **extra,
    }
    path = folder / "configuration.json"
    path.write_text(json.dumps(config))
    return path


def measured(command, workdir):
    """Run ``command`` under bench/measure.py: wall seconds, peak RSS MiB, output."""
    out = Path(workdir) / f"measure-{time.monotonic_ns()}.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "measure.py"), str(out), "--", *command], env=ENV, check=True)
    result = json.loads(out.read_text())
    if result["returncode"] != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{result['stderr'][-2000:]}")
    return result


def run_tl(config, workdir):
    result = measured([sys.executable, "-m", "tlcli", "run", "-p", "bench.epoch_timer", str(config)], workdir)
    out = Path(json.loads(config.read_text())["output_dir"])
    result["top_1_accuracy"] = json.loads((out / "results.json").read_text())["top_1_accuracy"]
    result["epoch_seconds"] = json.loads((out / "epoch_seconds.json").read_text())
    return result


def run_reference(base, dataset, args, workdir, epochs, augment=False, seed=0, extract=False):
    command = [sys.executable, str(REPO / "bench" / "reference.py"), str(base), str(dataset), str(args.input_size),
               str(epochs), str(args.batch_size), "--seed", str(seed)] + (["--augment"] if augment else []) + (
        ["--extract"] if extract else [])
    result = measured(command, workdir)
    result.update(json.loads(result["stdout"].strip().splitlines()[-1]))
    return result


def run_torch_reference(base, dataset, args, workdir, epochs, augment=False):
    command = [sys.executable, str(REPO / "bench" / "torch_reference.py"), str(base), str(dataset),
               str(args.input_size), str(epochs), str(args.batch_size), str(args.alpha),
               "--workers", str(args.torch_workers)] + (["--augment"] if augment else [])
    result = measured(command, workdir)
    result.update(json.loads(result["stdout"].strip().splitlines()[-1]))
    return result


def startup_seconds(args_list, repeats=11):
    times = []
    for _ in range(repeats):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "tlcli", *args_list], env=ENV, capture_output=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def steady_epoch(seconds):
    """Median epoch time after the first (which includes tracing and warm-up)."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="96 px, alpha 0.35, fewer accuracy runs and decode images; 300 / 3000 images for memory")
    parser.add_argument("--images", help="dataset sizes of the speed comparison, comma-separated (default 500,5000)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections, comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--small", type=int, help="smaller dataset of the memory comparison (default 500)")
    parser.add_argument("--large", type=int, help="larger dataset of the memory comparison (default 10x --small)")
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", choices=("random", "imagenet"), default="random")
    parser.add_argument("--framework", choices=("keras", "torch", "both"), default="both",
                        help="which framework's tl to measure against its plain reference (default both)")
    parser.add_argument("--torch-workers", type=int, default=2,
                        help="DataLoader num_workers of the plain-PyTorch reference (default 2)")
    parser.add_argument("--workdir", type=Path, help="keep datasets and runs here (default: a temporary folder)")
    args = parser.parse_args()
    args.images = [int(n) for n in (args.images or "500,5000").split(",")]
    args.only = set(args.only.split(","))
    if args.only - set(SECTIONS):
        parser.error(f"--only: unknown sections {sorted(args.only - set(SECTIONS))}; use {', '.join(SECTIONS)}")
    args.small = args.small or (300 if args.quick else 500)
    args.large = args.large or 10 * args.small
    args.input_size = args.input_size or (96 if args.quick else 224)
    args.alpha = args.alpha or (0.35 if args.quick else 1.0)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tl-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

    started = time.monotonic()
    print(f"Workdir {workdir}; MobileNetV2 alpha {args.alpha} at {args.input_size} px ({args.weights} weights), "
          f"{args.epochs} epochs, batch {args.batch_size}, {os.cpu_count()} cores; sections: "
          f"{', '.join(s for s in SECTIONS if s in args.only)}", flush=True)
    speed = {n: make_dataset(workdir / f"data-{n}", n) for n in args.images} if "speed" in args.only else {}
    small = make_dataset(workdir / f"data-{args.small}", args.small) if "memory" in args.only else None
    large = make_dataset(workdir / f"data-{args.large}", args.large) if "memory" in args.only else None

    frameworks = ("keras", "torch") if args.framework == "both" else (args.framework,)
    tables = {}
    for framework in frameworks:
        if framework == "keras":
            base = make_base(workdir / f"base-{args.input_size}-{args.alpha}-{args.weights}.h5", args.input_size,
                             args.alpha, None if args.weights == "random" else "imagenet")
            reference, title = run_reference, "Keras: tl vs plain Keras (image_dataset_from_directory + model.fit)"
            extra = {}
        else:
            base = make_torch_base(workdir / f"base-{args.input_size}-{args.alpha}-{args.weights}.pt",
                                   args.input_size, args.alpha, None if args.weights == "random" else "imagenet")
            reference = run_torch_reference
            title = (f"PyTorch: tl vs plain PyTorch (ImageFolder + DataLoader, {args.torch_workers} workers, "
                     "whole model every epoch)")
            extra = {"framework": "torch"}
        rows = measure_framework(framework, base, reference, extra, speed, small, large, args, workdir)
        if framework == "keras" and "decode" in args.only:
            rows += sections.decode_rows(base, args, workdir, run_tl, write_config, run_reference)
        if framework == "keras" and "accuracy" in args.only:
            rows += sections.accuracy_rows(base, args, workdir, run_tl, write_config, run_reference, make_dataset)
        if framework == "torch" and args.only & {"decode", "accuracy"}:
            title += "\n(decode and accuracy are measured for keras only)"
        tables[framework] = (title, rows)

    if "startup" in args.only:
        startup = measure_startup(workdir)
        tables["startup"] = ("CLI start-up (median of 11)", [
            Row(f"CLI start-up, {name}", seconds, None, "s", "lower", versus=None, goal="tl <= 1.2 s (target 0.3)",
                check=lambda row: row.tl <= STARTUP_LIMIT) for name, seconds in startup.items()])
    for title, rows in tables.values():
        print_table(title, rows)
    print_summary([Row(f"{framework}: {row.figure}" if framework in ("keras", "torch") else row.figure,
                       **{key: value for key, value in vars(row).items() if key != "figure"})
                   for framework, (_, rows) in tables.items() for row in rows])
    print(f"\nIn all {(time.monotonic() - started) / 60:.1f} min")


def measure_startup(workdir):
    print("Measuring CLI start-up ...", flush=True)
    bad = workdir / "bad.json"
    bad.write_text("{not json")
    startup = {name: startup_seconds(argv) for name, argv in
               (("tl --help", ["--help"]), ("tl plugins list", ["plugins", "list"]),
                ("tl run (configuration error)", ["run", str(bad)]))}
    return startup


def conditions(result):
    """What else the machine did while ``result`` was measured: load averages at its end and the
    cores other processes kept busy during it (bench/measure.py)."""
    load = " ".join(f"{value:.2f}" for value in result["load_average"])
    other = result.get("other_cpu")
    return f"load average {load}" + ("" if other is None else f", other processes {other:.2f} cores")


def measure_framework(framework, base, reference, extra, speed, small, large, args, workdir):
    """The rows of one framework's speed and memory sections."""
    name = "Keras" if framework == "keras" else "PyTorch"

    def both(tl, ref):
        return f"tl: {conditions(tl)}; reference: {conditions(ref)}"

    rows = []
    for count, dataset in speed.items():
        print(f"[{framework}] Frozen base, {count} images, {args.epochs} epochs: tl ...", flush=True)
        tl_cached = run_tl(write_config(workdir / f"{framework}-tl-cached-{count}", dataset, base, args, **extra),
                           workdir)
        print(f"[{framework}] ... and the plain-{name} reference", flush=True)
        ref = reference(base, dataset, args, workdir, args.epochs)
        goal = GOALS.get(count)
        rows += [
            Row(f"wall time, {count} images, {args.epochs} epochs, frozen", tl_cached["wall_seconds"],
                ref["wall_seconds"], "s", "lower", both(tl_cached, ref),
                goal=f"ratio <= {goal}" if goal else "",
                check=(lambda row, goal=goal: row.comparison <= goal) if goal else None),
            Row(f"Top-1 accuracy, same runs ({count} images)", tl_cached["top_1_accuracy"], ref["top_1_accuracy"],
                "", "higher", versus="points"),
            Row(f"peak RSS, same runs ({count} images)", tl_cached["peak_rss_mib"], ref["peak_rss_mib"], "MiB",
                "lower"),
        ]
    if speed:
        count, dataset = min(speed.items())
        streaming_epochs = 3
        print(f"[{framework}] No caching (augmentation, no views), {streaming_epochs} epochs: tl ...", flush=True)
        tl_stream = run_tl(write_config(workdir / f"{framework}-tl-augment", dataset, base, args,
                                        epochs=streaming_epochs, augmentation=["flip"], augmentation_views=0, **extra),
                           workdir)
        print(f"[{framework}] ... and the reference with the same augmentation", flush=True)
        ref_stream = reference(base, dataset, args, workdir, streaming_epochs, augment=True)
        rows.append(Row(f"per-epoch images/s with augmentation, {count} images",
                        count / steady_epoch(tl_stream["epoch_seconds"]),
                        count / steady_epoch(ref_stream["epoch_seconds"]), "img/s", "higher",
                        both(tl_stream, ref_stream)))
    if small is not None:
        print(f"[{framework}] Memory: tl on {args.small} and {args.large} images ...", flush=True)
        tl_large = run_tl(write_config(workdir / f"{framework}-tl-large", large, base, args, epochs=2, **extra),
                          workdir)
        tl_small = run_tl(write_config(workdir / f"{framework}-tl-small", small, base, args, epochs=2, **extra),
                          workdir)
        rows.append(Row(f"peak RSS tl, {args.large} (tl column) vs {args.small} images (reference column)",
                        tl_large["peak_rss_mib"], tl_small["peak_rss_mib"], "MiB", "lower",
                        f"large: {conditions(tl_large)}; small: {conditions(tl_small)}"))
    return rows


if __name__ == "__main__":
    main()
