"""Quantizing for the IMX500, measured: float and quantized Top-1, quantization and conversion time, memory.

    python bench/quantize.py                       # both frameworks, MobileNetV2 alpha 0.35 at 96 px
    python bench/quantize.py --framework keras --alpha 1.0 --input-size 224

The data are scikit-image's textures (brick, grass, gravel; CC0, installed with scikit-image):
40 training and 100 validation crops per class, from different halves of each texture. The
base is MobileNetV2 with random weights (ImageNet weights cannot be downloaded here). For each
framework: `tl run` (10 epochs), then `tl quantize` (post-training quantization with Sony's
TPC, 128 calibration images, then Sony's IMX500 converter), each measured by bench/measure.py
(wall time, peak resident memory); the quantization and conversion times are tl's own lines.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.benchmark import ENV  # noqa: E402
from tests.builders import texture_dataset  # noqa: E402

DONE = re.compile(r"^(Quantizing|Converting for the IMX500[^:]*|Exporting the quantized model): done in ([\d.]+) s",
                  re.M)


def measured(command, workdir, name):
    out = workdir / f"{name}.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "measure.py"), str(out), "--", *command], env=ENV,
                   check=True)
    result = json.loads(out.read_text())
    if result["returncode"] != 0:
        raise SystemExit(f"{name} failed:\n{result['stdout'][-3000:]}{result['stderr'][-3000:]}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=("keras", "torch", "both"), default="both")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tl-bench-quantize-"))
    data = texture_dataset(workdir / "textures", train_per_class=40, val_per_class=100, crop=64)
    frameworks = ("keras", "torch") if args.framework == "both" else (args.framework,)
    rows = []
    for framework in frameworks:
        folder = workdir / framework
        folder.mkdir()
        config = folder / "configuration.json"
        config.write_text(json.dumps({
            "framework": framework, "dataset_training_dir": str(data / "training"),
            "dataset_validation_dir": str(data / "validation"), "weights": None, "mobilenet_alpha": args.alpha,
            "input_tensor_size": args.input_size, "epochs": args.epochs, "seed": 0, "output_dir": "out",
            "evaluate_result_dir": "out"}))
        print(f"[{framework}] tl run ...", flush=True)
        trained = measured([sys.executable, "-m", "tlcli", "run", str(config)], workdir, f"{framework}-run")
        print(f"[{framework}] tl quantize ...", flush=True)
        quantized = measured([sys.executable, "-m", "tlcli", "quantize", str(config)], workdir, f"{framework}-quantize")
        steps = {name.split(" (")[0].split(" with ")[0]: float(seconds) for name, seconds in
                 DONE.findall(quantized["stdout"])}
        results = json.loads((folder / "out" / "results.json").read_text())  # tl quantize adds quantized_*
        rows.append((framework, results["top_1_accuracy"], results["quantized_top_1_accuracy"],
                     results["num_images"], steps.get("Quantizing", float("nan")),
                     steps.get("Converting for the IMX500", float("nan")), trained["wall_seconds"],
                     quantized["wall_seconds"], trained["peak_rss_mib"], quantized["peak_rss_mib"]))
    print()
    print(f"MobileNetV2 alpha {args.alpha} at {args.input_size} px, random weights, {args.epochs} epochs; "
          f"scikit-image textures (3 classes, 120 training, 300 validation images)")
    print(f"{'framework':<9} {'float':>6} {'quant.':>6} {'quantize s':>10} {'convert s':>9} {'run s':>6} "
          f"{'tl quantize s':>13} {'run MiB':>8} {'quantize MiB':>12}")
    for framework, top1, qtop1, _n, quantize, convert, run_s, quantize_s, run_mib, quantize_mib in rows:
        print(f"{framework:<9} {top1:>6.3f} {qtop1:>6.3f} {quantize:>10.1f} {convert:>9.1f} {run_s:>6.1f} "
              f"{quantize_s:>13.1f} {run_mib:>8.0f} {quantize_mib:>12.0f}")
    print(f"(Top-1 over {rows[0][3]} validation images; peak RSS of the largest process)")


if __name__ == "__main__":
    main()
