"""Every named base model, measured on this machine: speed, accuracy, quantization and the IMX500.

    python bench/models.py                              # every base of both frameworks (about 1.5 h on 2 cores)
    python bench/models.py --only keras/efficientnet_b0,torch/resnet18
    python bench/models.py --write                      # also write plugins/imx500/measured.json and the docs table
    python bench/models.py --speed --write              # feature extraction alone again, on an idle machine

For each base (`tl models` lists them), at its default input size:

- feature extraction: images/s of the base alone (batches of 16 random images, after one warm-up batch);
- `tl run` on the real-photo set `small` (bench/DATASETS.md: 5 classes, 200 training and 70 validation photos;
  10 epochs, no augmented views) with ImageNet weights where they are on this machine (MobileNetV2 1.0 here),
  else random weights; float Top-1 is quoted only with ImageNet weights (random features measure nothing);
- `tl quantize` (MCT post-training quantization with Sony's TPC, 64 calibration images, then Sony's IMX500
  converter): quantized Top-1, the agreement of the float and quantized models' top labels on the validation
  photos, the converter's time and the chip memory it reports, and whether the model fits. A model that does not
  fit is quantized again without the converter, for its quantized figures.

Each base runs in a process of its own; its record is appended to `bench/results/models.jsonl` as it finishes,
so an interrupted benchmark keeps what it measured. `--write` turns the newest record of each base into
`plugins/imx500/measured.json` (what `tl models` and the layer check read) and the table of docs/models.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "models.jsonl"
MEASURED = REPO / "plugins" / "imx500" / "measured.json"
DOCS = REPO / "docs" / "models.md"
TL = [sys.executable, "-m", "tlcli"]
CONVERTED = re.compile(r"^Converting for the IMX500 with (\S+)[^:]*: done in ([\d.]+) s", re.M)
MEMORY = re.compile(r"\(([\d.]+)\s*([KM])B of ([\d.]+)\s*MB")


def bases(only: set[str] | None) -> list[dict]:
    from tlcore.api import list_models

    return [record for record in list_models()
            if only is None or f'{record["framework"]}/{record["name"]}' in only]


def speed(framework: str, name: str, size: int, weights: object) -> float:
    """Images/s of the base alone at ``size`` pixels."""
    import numpy as np

    from tlcore.base_models import registered_base_models
    from tlcore.pluginmanager import make_plugin_manager

    base = registered_base_models(make_plugin_manager())[framework, name][0]
    model = base.build(size, weights, {})
    images = np.random.default_rng(0).uniform(-1, 1, (16, size, size, 3)).astype("float32")
    if framework == "torch":
        import torch

        batch = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())

        def run() -> None:
            with torch.inference_mode():
                model(batch)
    else:
        import tensorflow as tf

        call = tf.function(lambda x: model(x, training=False))

        def run() -> None:
            call(images).numpy()
    run()
    start, count = time.perf_counter(), 0
    while count < 3 or time.perf_counter() - start < 10:
        run()
        count += 1
    return 16 * count / (time.perf_counter() - start)


def tl(arguments: list[str], folder: Path) -> tuple[int, str]:
    result = subprocess.run([*TL, *arguments], cwd=folder, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def agreement(output: Path, images: list[Path]) -> float:
    """The share of ``images`` whose top label is the same for the float and the quantized model."""
    from tlcore.api import predict

    floats = {p.path: p.predictions[0][0] for p in predict(output / "saved_model", images, top_k=1)}
    quantized = {p.path: p.predictions[0][0] for p in predict(output, images, top_k=1, quantized=True)}
    return sum(floats[path] == quantized.get(path) for path in floats) / len(floats)


def measure_one(framework: str, name: str, dataset: Path) -> dict:
    """One base, in this process: the record of its figures."""
    from tlcore.api import list_models

    record = next(r for r in list_models(framework) if r["name"] == name)
    size = record["default_size"]
    real = record["imagenet_weights"]["cached"]
    weights = "imagenet" if real else None
    figures: dict = {"framework": framework, "name": name, "size": size, "weights": "imagenet" if real else "random",
                     "parameters": record["parameters"], "dataset": dataset.name}
    figures["images_per_second"] = round(speed(framework, name, size, weights), 1)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        config = {"dataset_training_dir": str(dataset / "training"), "dataset_validation_dir": str(dataset / "validation"),
                  "evaluate_label_file": str(dataset / "labels.json"), "output_dir": "out",
                  "evaluate_result_dir": "out", "framework": framework, "base_model": name, "weights": weights,
                  "input_tensor_size": size, "epochs": 10, "augmentation_views": 0, "data_check": False, "seed": 0,
                  "quantization_images": 64}
        (folder / "configuration.json").write_text(json.dumps(config))
        start = time.perf_counter()
        code, log = tl(["run"], folder)
        figures["run_seconds"] = round(time.perf_counter() - start, 1)
        if code != 0:
            figures["error"] = log.strip().splitlines()[-1]
            return figures
        results = json.loads((folder / "out" / "results.json").read_text())
        figures["float_top1"] = results["top_1_accuracy"]
        start = time.perf_counter()
        code, log = tl(["quantize"], folder)
        figures["quantize_seconds"] = round(time.perf_counter() - start, 1)
        converted = CONVERTED.search(log)
        figures["converter"] = converter_version()
        memory = MEMORY.search(log)
        if memory:
            used = float(memory.group(1)) / (1024 if memory.group(2) == "K" else 1)  # KB as the converter counts them, 1024 to the MB
            figures["memory_mb"], figures["capacity_mb"] = round(used, 2), float(memory.group(3))
        if code == 0:
            figures["converts"], figures["fits"] = True, "fits in the chip: yes" in log
            figures["conversion_seconds"] = float(converted.group(2)) if converted else None
        else:
            error = log.strip().splitlines()[-1].removeprefix("Error: ")
            fits_not = "does not fit" in error
            figures["converts"], figures["fits"] = fits_not, False if fits_not else None
            figures["reason"] = error
            code, log = tl(["quantize", "--block", "imx500.converter"], folder)  # the quantized figures alone
            if code != 0:
                figures["quantize_error"] = log.strip().splitlines()[-1]
                return figures
        results = json.loads((folder / "out" / "results.json").read_text())
        figures["quantized_top1"] = results.get("quantized_top_1_accuracy")
        figures["converter"] = results.get("quantization", {}).get("converter") or figures["converter"]
        images = sorted(p for p in (dataset / "validation").rglob("*") if p.is_file())
        figures["agreement"] = round(agreement(folder / "out", images), 4)
    return figures


def converter_version() -> str:
    """The installed converter's version, as pip knows it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"imx500-converter {version('imx500-converter')}"
    except PackageNotFoundError:
        return ""


def newest() -> dict[str, dict]:
    records: dict[str, dict] = {}
    if RESULTS.exists():
        for line in RESULTS.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                records[f'{record["framework"]}/{record["name"]}'] = record
    return records


def imx500(record: dict) -> dict | None:
    if "converts" not in record:
        return None
    reason = None
    if not record["converts"]:
        reason = record.get("reason")
    elif record.get("fits") is False and record.get("memory_mb") is not None:
        size = record["size"]
        reason = (f'needs {record["memory_mb"]:.2f} MB of the chip\'s {record.get("capacity_mb", 8.0):.2f} MB at '
                  f"{size}x{size}")
    converter = record.get("converter", "")
    if converter.startswith("imx500-converter "):  # the package's version, when the converter said none
        converter = f'imxconv-{"tf" if record["framework"] == "keras" else "pt"} {converter.split()[-1]}'
    return {"converts": record["converts"], "memory_mb": record.get("memory_mb"), "fits": record.get("fits"),
            "reason": reason, "size": record["size"], "capacity_mb": record.get("capacity_mb", 8.0),
            "converter": converter}


def table(records: dict[str, dict]) -> str:
    rows = ["| framework | base_model | parameters | size | features img/s | weights | float Top-1 | quantized Top-1 "
            "| float/quantized agreement | conversion s | chip memory MB | fits |",
            "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for key in sorted(records):
        r = records[key]

        def shown(value: object, form: str = "{:.1%}") -> str:
            return "—" if value is None else form.format(value)

        float_top1 = shown(r.get("float_top1")) if r["weights"] == "imagenet" else "(random weights)"
        fits = {True: "yes", False: "no", None: "—"}[r.get("fits")] if "converts" in r else "—"
        if r.get("converts") is False:
            fits = "does not convert"
        rows.append(f'| {r["framework"]} | `{r["name"]}` | {r["parameters"] / 1e6:.2f} M | {r["size"]} | '
                    f'{shown(r.get("images_per_second"), "{:.1f}")} | {r["weights"]} | {float_top1} | '
                    f'{shown(r.get("quantized_top1")) if r["weights"] == "imagenet" else "(random weights)"} | '
                    f'{shown(r.get("agreement"))} | {shown(r.get("conversion_seconds"), "{:.0f}")} | '
                    f'{shown(r.get("memory_mb"), "{:.2f}")} | {fits} |')
    return "\n".join(rows)


def write(records: dict[str, dict]) -> None:
    MEASURED.write_text(json.dumps({"measured_with": converter_version(), "by": "bench/models.py",
                                    "bases": {key: {"imx500": imx500(r), "images_per_second": r.get("images_per_second")}
                                              for key, r in sorted(records.items())}}, indent=1) + "\n")
    text = DOCS.read_text()
    start, end = "<!-- bench/models.py -->", "<!-- end bench/models.py -->"
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    DOCS.write_text(f"{before}{start}\n{table(records)}\n{end}{after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="framework/name,... (default: every base)")
    parser.add_argument("--dataset", default=str(Path.home() / ".cache/tl-bench/datasets/small"))
    parser.add_argument("--write", action="store_true", help="write measured.json and the docs table")
    parser.add_argument("--speed", action="store_true",
                        help="measure only feature extraction again (on an idle machine), keeping the other figures")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--speed-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        framework, name = args.one.split("/")
        print(json.dumps(measure_one(framework, name, Path(args.dataset))))
        return
    if args.speed_of:
        framework, name = args.speed_of.split("/")
        record = next(r for r in bases({args.speed_of}))
        weights = "imagenet" if record["imagenet_weights"]["cached"] else None
        print(json.dumps(round(speed(framework, name, record["default_size"], weights), 1)))
        return
    dataset = Path(args.dataset)
    if not (dataset / "training").is_dir():
        subprocess.run([sys.executable, str(REPO / "bench" / "datasets.py"), "--only", dataset.name,
                        "--root", str(dataset.parent)], check=True)
    only = set(args.only.split(",")) if args.only else None
    RESULTS.parent.mkdir(exist_ok=True)
    if args.speed:
        records = newest()
        for key in sorted(records):
            if only is None or key in only:
                result = subprocess.run([sys.executable, __file__, "--speed-of", key], capture_output=True, text=True,
                                        check=True)
                records[key] = {**records[key], "images_per_second": json.loads(result.stdout.splitlines()[-1])}
                with RESULTS.open("a") as handle:
                    handle.write(json.dumps(records[key]) + "\n")
                print(f'{key}: {records[key]["images_per_second"]} images/s', flush=True)
    for record in [] if args.speed else bases(only):
        key = f'{record["framework"]}/{record["name"]}'
        start = time.perf_counter()
        result = subprocess.run([sys.executable, __file__, "--one", key, "--dataset", str(dataset)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{key}: failed: {result.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        with RESULTS.open("a") as handle:
            handle.write(json.dumps(figures) + "\n")
        print(f"{key} ({time.perf_counter() - start:.0f} s): {json.dumps(figures)}", flush=True)
    records = newest()
    print(table(records))
    if args.write:
        write(records)


if __name__ == "__main__":
    main()
