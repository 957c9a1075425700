"""Top-1 on real photo datasets with real ImageNet features: tl at its default settings against the recipes
people use, on the same folds and seeds.

    python bench/accuracy.py --quick --framework keras   # fewer runs (folds 0-1, seed 0): about 20 minutes
    python bench/accuracy.py                             # 4 folds x 3 seeds, both frameworks
    python bench/accuracy.py --only small,many --methods tl,notebook --quantize --out results.json

The datasets are bench/datasets.py's (fewshot, small, many, imbalanced: real photographs; see DATASETS),
each split by a stratified seeded 4-fold cross-validation over all its images (datasets.folds: fold i
validates, the others train). Every method runs on each dataset x fold x seed (seeds 0, 1, 2), MobileNetV2
1.0 at 224 px with ImageNet weights, 10 epochs, batch 32:
- tl (keras): `tl run` at its default settings: the configuration sets only the dataset folders, the
  output folders and "seed" (and "framework"), so the head search ("head_search": "auto") picks
  learning_rate, weight_decay, label_smoothing and epochs; the chosen values are kept in the raw results;
- tl-fixed (keras): the same with "head_search": false (the configured defaults: Adam 1e-3, 10 epochs);
- notebook (keras): the SDK training notebook's recipe, bench/reference.py --imagenet
  (image_dataset_from_directory + frozen MobileNetV2 + Dense softmax, model.fit for 10 epochs);
- guide (keras): the Keras transfer-learning guide's two phases, bench/keras_guide.py (head on the frozen
  base, Adam 1e-3, 10 epochs; then layers 100 on fine-tuned with Adam 1e-5, BatchNorm in inference
  mode, --guide-fine-tune-epochs more epochs, 5 by default; the guide's flip and rotation augmentation);
- probe (keras): logistic regression on pooled MobileNetV2 features, C by cross-validation on the training
  images only (bench/probe.py); deterministic, so it runs once per fold and counts for every seed;
- torch-tl, torch-tl-fixed: tl with "framework": "torch", default and "head_search": false;
- torch-loop: the plain-PyTorch loop, bench/torch_reference.py (ImageFolder + DataLoader, Adam 1e-3,
  10 epochs).
Torch runs use the ImageNet weights converted from Keras's into torchvision's layout (installed under
torchvision's cache name for IMAGENET1K_V2): "torch (converted weights)" figures, NOT torchvision's own.

--quantize: the tl runs (default settings) also quantize ("quantize": true: MCT post-training
quantization, IMX500 TPC, 128 calibration images) and results.json's quantized_top_1_accuracy is compared
with the float Top-1 (goal: within 1 point on average, or at most one image per fold); Sony's converter
runs on the first fold of each dataset only (the others set "block_plugins": ["imx500.converter"]).

Prints, per framework, dataset x method: mean Top-1 +- standard error over the runs (balanced accuracy,
the mean per-class recall, too for imbalanced), the paired per-run difference of tl against the best
reference (its mean and how many runs tl wins) and against tl-fixed, and the mean seconds per run (wall
time of the whole process, bench/measure.py). Raw per-run results go to --out after every run (--resume
keeps the runs already there whose fold folder bench/datasets.py has not rebuilt since; --report only prints
the tables of --out).

Time on 2 cores shared with other work: --quick --framework keras about 25 minutes (the notebook and the
guide forward every image every epoch: 30-90 s a run against tl's 20-40 s), --quick --framework torch
about 15; the full run (4 folds x 3 seeds) about 6 times as long per framework, so run it per framework or
with --only. --quantize adds about a minute of quantization per tl run and 2-3 minutes of conversion per
dataset.
"""

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench import datasets, probe  # noqa: E402
from bench.benchmark import ENV  # noqa: E402
from bench.table import Row, print_table  # noqa: E402

SIZE, EPOCHS, BATCH = 224, 10, 32
FOLDS, SEEDS = 4, (0, 1, 2)
QUICK_FOLDS, QUICK_SEEDS = (0, 1), (0,)
METHODS = {
    "keras": ("tl", "tl-fixed", "notebook", "guide", "probe"),
    "torch": ("torch-tl", "torch-tl-fixed", "torch-loop"),
}
TL_METHODS = {"tl": {}, "tl-fixed": {"head_search": False},
              "torch-tl": {"framework": "torch"}, "torch-tl-fixed": {"framework": "torch", "head_search": False}}
DEFAULT_TL = {"keras": "tl", "torch": "torch-tl"}
FIXED_TL = {"keras": "tl-fixed", "torch": "torch-tl-fixed"}
LABELS = {
    "tl": "tl (default)", "tl-fixed": "tl head_search false", "notebook": "SDK notebook", "guide": "Keras guide",
    "probe": "logistic probe", "torch-tl": "tl (default)", "torch-tl-fixed": "tl head_search false",
    "torch-loop": "plain PyTorch loop",
}
TORCH_WEIGHTS = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"), "hub", "checkpoints",
                     "mobilenet_v2-7ebf99e0.pth")
"""Where torchvision looks for MobileNet_V2_Weights.IMAGENET1K_V2: here the weights converted from Keras's."""
DONE = re.compile(r"^(Quantizing|Converting for the IMX500[^:]*)[^:\n]*: done in ([\d.]+) s", re.M)


def tl_command():
    beside = Path(sys.executable).parent / "tl"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "tlcli"]


def measured(command, folder):
    """Run ``command`` under bench/measure.py: its wall seconds, peak RSS, return code and output."""
    out = folder / "measure.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "measure.py"), str(out), "--", *command], env=ENV,
                   check=True, cwd=folder)
    return json.loads(out.read_text())


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def balanced(per_class):
    """Mean per-class recall from results.json's per_class (each class's Top-1 on its own images)."""
    return statistics.mean(value["top_1_accuracy"] for value in per_class.values()) if per_class else None


def run_tl(method, dataset, seed, folder, quantize, convert):
    out = folder / "out"
    config = {"dataset_training_dir": str(dataset / "training"), "dataset_validation_dir": str(dataset / "validation"),
              "output_dir": str(out), "evaluate_result_dir": str(out), "seed": seed, **TL_METHODS[method]}
    if quantize:
        config["quantize"] = True
        if not convert:
            config["block_plugins"] = ["imx500.converter"]
    (folder / "configuration.json").write_text(json.dumps(config, indent=1))
    result = measured([*tl_command(), "run", str(folder / "configuration.json")], folder)
    if result["returncode"] != 0:
        return result, None
    metrics = json.loads((out / "results.json").read_text())
    record = {"top_1": metrics["top_1_accuracy"], "balanced": balanced(metrics.get("per_class")),
              "num_images": metrics.get("num_images")}
    search = metrics.get("head_search")
    if search:
        record["head_search"] = {"chosen": search.get("chosen"), "cv_accuracy": search.get("cv_accuracy"),
                                 "seconds": search.get("seconds"),
                                 "head_training_seconds": search.get("head_training_seconds")}
    if quantize:
        record["quantized_top_1"] = metrics.get("quantized_top_1_accuracy")
        record["quantized_balanced"] = balanced(metrics.get("quantized_per_class"))
        record["converted"] = bool(metrics.get("quantization", {}).get("converted"))
        steps = {name.split(" (")[0].split(" with ")[0]: float(s) for name, s in DONE.findall(result["stdout"])}
        record["quantize_seconds"] = steps.get("Quantizing")
        record["convert_seconds"] = steps.get("Converting for the IMX500")
    return result, record


def run_script(method, dataset, seed, folder, args):
    python = sys.executable
    if method == "notebook":
        command = [python, str(REPO / "bench" / "reference.py"), "imagenet", str(dataset), str(SIZE), str(EPOCHS),
                   str(BATCH), "--seed", str(seed), "--imagenet"]
    elif method == "guide":
        command = [python, str(REPO / "bench" / "keras_guide.py"), "imagenet", str(dataset), str(SIZE), str(EPOCHS),
                   str(args.guide_fine_tune_epochs), str(BATCH), "--seed", str(seed), "--imagenet"]
    elif method == "probe":
        command = [python, "-c", "import json, sys; from bench.probe import probe_top1; "
                                 "print(json.dumps(probe_top1(sys.argv[1])))", str(dataset)]
    elif method == "torch-loop":  # its command line has no --seed: call main() with one
        command = [python, "-c", "import sys; from bench.torch_reference import main; "
                                 "main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6]), 1.0, seed=int(sys.argv[6]))",
                   str(TORCH_WEIGHTS), str(dataset), str(SIZE), str(EPOCHS), str(BATCH), str(seed)]
    else:
        raise ValueError(method)
    result = measured(command, folder)
    if result["returncode"] != 0:
        return result, None
    printed = last_json(result["stdout"])
    if not isinstance(printed, dict):  # a bare Top-1
        printed = {"top_1_accuracy": printed}
    top1 = printed.get("top_1_accuracy", printed.get("top_1"))
    return result, {"top_1": top1, "balanced": printed.get("balanced_accuracy")}


def plan(args):
    """The runs in order: seed and fold outermost, so that a run cut short still covers every dataset."""
    runs = []
    for seed in args.seeds:
        for fold in args.folds:
            for name in args.only:
                for framework in args.frameworks:
                    for method in METHODS[framework]:
                        if method not in args.methods:
                            continue
                        if method == "probe" and seed != args.seeds[0]:
                            continue  # deterministic: once per fold
                        runs.append((name, framework, method, fold, seed))
    return runs


def dataset_version(folder):
    """bench/datasets.py's stamp of a fold's folder (it changes when a dataset's definition does), or None."""
    stamp = Path(folder, ".tl-bench-dataset")
    return stamp.read_text().strip() if stamp.is_file() else None


def key(record):
    return record["dataset"], record["method"], record["fold"], record["seed"], bool(record.get("quantize"))


def execute(args):
    done = []
    if args.resume and args.out.exists():
        done = json.loads(args.out.read_text())["runs"]
    known = {key(record): record.get("dataset_version") for record in done if record.get("top_1") is not None}
    workdir = Path(tempfile.mkdtemp(prefix="tl-accuracy-", dir=args.workdir))
    runs = plan(args)
    started = time.monotonic()
    converted = set()
    for number, (name, framework, method, fold, seed) in enumerate(runs, 1):
        quantize = args.quantize and method in DEFAULT_TL.values()
        dataset = datasets.folds(name, FOLDS, fold, args.root)
        version = dataset_version(dataset)
        if (name, method, fold, seed, quantize) in known and known[name, method, fold, seed, quantize] in (None, version):
            continue
        folder = workdir / f"{name}-{method}-{fold}-{seed}"
        folder.mkdir(parents=True)
        convert = quantize and (name, framework) not in converted
        elapsed = (time.monotonic() - started) / 60
        print(f"[{number}/{len(runs)}, {elapsed:.1f} min] {name} fold {fold} seed {seed}: {method}"
              + (" (quantize" + (", convert)" if convert else ")") if quantize else ""), flush=True)
        if method in TL_METHODS:
            result, record = run_tl(method, dataset, seed, folder, quantize, convert)
        else:
            result, record = run_script(method, dataset, seed, folder, args)
        record = {"dataset": name, "framework": framework, "method": method, "fold": fold, "seed": seed,
                  "quantize": quantize, "dataset_version": version, "seconds": result["wall_seconds"], "peak_rss_mib": result["peak_rss_mib"],
                  "other_cpu": result.get("other_cpu"), **(record or {"top_1": None})}
        if record["top_1"] is None:
            record["error"] = (result["stdout"][-1500:] + result["stderr"][-3000:]).strip()
            print(f"  FAILED (exit {result['returncode']}): {record['error'][-600:]}", flush=True)
        else:
            if record.get("converted"):
                converted.add((name, framework))
            shown = f"  Top-1 {record['top_1']:.4f}" + (
                f", balanced {record['balanced']:.4f}" if record.get("balanced") is not None else "") + (
                f", quantized {record['quantized_top_1']:.4f}" if record.get("quantized_top_1") is not None else "")
            print(f"{shown}; {record['seconds']:.0f} s"
                  + (f"; head search chose {record['head_search']['chosen']} in {record['head_search']['seconds']} s "
                     f"(the head then trained in {record['head_search']['head_training_seconds']} s)"
                     if record.get("head_search") else ""),
                  flush=True)
        done = [old for old in done if key(old) != key(record)] + [record]
        args.out.write_text(json.dumps({"settings": settings(args), "runs": done}, indent=1))
    return done


def settings(args):
    return {"size": SIZE, "epochs": EPOCHS, "batch_size": BATCH, "folds": FOLDS, "folds_run": list(args.folds),
            "seeds": list(args.seeds), "guide_fine_tune_epochs": args.guide_fine_tune_epochs,
            "torch_weights": "converted from Keras's ImageNet MobileNetV2 (not torchvision's own)",
            "cpu_count": os.cpu_count()}


def expanded(records, args):
    """The probe's once-per-fold results copied to every seed, so that all methods pair run by run."""
    out = []
    for record in records:
        if record["method"] == "probe":
            out += [{**record, "seed": seed} for seed in args.seeds]
        else:
            out.append(record)
    return out


def mean_se(values):
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], None
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def cell(values):
    mean, se = mean_se(values)
    if mean is None:
        return "-"
    return f"{100 * mean:.1f}" + (f"+-{100 * se:.1f}" if se is not None else "")


def paired(records, dataset, a, b, metric="top_1"):
    """Per-run differences a - b (points) on the runs both have, matched on fold and seed."""
    first = {(r["fold"], r["seed"]): r[metric] for r in records if r["dataset"] == dataset and r["method"] == a
             and r.get(metric) is not None}
    second = {(r["fold"], r["seed"]): r[metric] for r in records if r["dataset"] == dataset and r["method"] == b
              and r.get(metric) is not None}
    return [100 * (first[run] - second[run]) for run in sorted(first.keys() & second.keys())]


def report(records, args):
    records = expanded([r for r in records if r.get("top_1") is not None
                        and r["dataset"] in args.only and r["fold"] in args.folds and r["seed"] in args.seeds], args)
    for framework in args.frameworks:
        methods = [m for m in METHODS[framework] if m in args.methods]
        references = [m for m in methods if m not in TL_METHODS]
        title = "keras" if framework == "keras" else "torch (converted weights)"
        print(f"\n{title}: mean Top-1 % +- standard error over runs (n runs), mean seconds per run")
        width = 22
        print(f"{'dataset':<12}" + "".join(f"{LABELS[m]:>{width}}" for m in methods))
        summary = []
        for name in args.only:
            mine = [r for r in records if r["dataset"] == name]
            for metric, label in (("top_1", "Top-1"), ("balanced", "balanced")):
                if metric == "balanced" and name != "imbalanced":
                    continue
                values = {m: [r[metric] for r in mine if r["method"] == m and r.get(metric) is not None]
                          for m in methods}
                print(f"{name if metric == 'top_1' else '  ' + label:<12}"
                      + "".join(f"{cell(values[m]) + f' ({len(values[m])})':>{width}}" for m in methods))
                best = max((m for m in references if values[m]), key=lambda m: statistics.mean(values[m]), default=None)
                tl, fixed = DEFAULT_TL[framework], FIXED_TL[framework]
                for other in (best, fixed):
                    if other is None or other not in methods or tl not in methods:
                        continue
                    diffs = paired(mine, name, tl, other, metric)
                    if not diffs:
                        continue
                    mean, se = mean_se(diffs)
                    summary.append(Row(
                        f"{name} {label}: tl vs {LABELS[other]}" + (" (best reference)" if other == best else ""),
                        statistics.mean(values[tl]), statistics.mean(values[other]), "", "higher", versus="points",
                        note=f"paired over {len(diffs)} runs: {mean:+.1f} pts" + (f" +- {se:.1f}" if se else "")
                             + f", tl ahead in {sum(d > 0 for d in diffs)}, tied in {sum(d == 0 for d in diffs)}"))
            seconds = {m: [r["seconds"] for r in mine if r["method"] == m] for m in methods}
            print(f"{'  seconds':<12}" + "".join(
                f"{statistics.mean(seconds[m]):>{width}.0f}" if seconds[m] else f"{'-':>{width}}" for m in methods))
        if summary:
            print_table(f"{title}: tl (default settings) against the best reference and against head_search false; "
                        "the note pairs run by run (same fold and seed)", summary)
        if args.quantize:
            quantization_table(records, framework, args)


def quantization_table(records, framework, args):
    method = DEFAULT_TL[framework]
    print(f"\n{'keras' if framework == 'keras' else 'torch (converted weights)'}: float vs quantized Top-1 "
          "(IMX500 TPC, PTQ) of tl's default runs; goal: within 1 point on average, or <= 1 image per fold")
    print(f"{'dataset':<12} {'float':>7} {'quant.':>7} {'drop pts':>9} {'worst run':>15} {'met':>4} "
          f"{'quantize s':>10} {'convert s':>9}  converted")
    for name in args.only:
        runs = [r for r in records if r["dataset"] == name and r["method"] == method
                and r.get("quantized_top_1") is not None]
        if not runs:
            continue
        drops = [r["top_1"] - r["quantized_top_1"] for r in runs]
        images = [round(d * (r.get("num_images") or 0)) for d, r in zip(drops, runs)]
        mean_drop = 100 * statistics.mean(drops)
        met = "yes" if mean_drop <= 1.0 or max(images) <= 1 else "no"
        quantize = [r["quantize_seconds"] for r in runs if r.get("quantize_seconds")]
        convert = [r["convert_seconds"] for r in runs if r.get("convert_seconds")]
        converted_folds = ", ".join(f"fold {r['fold']}" for r in runs if r.get("converted")) or "none"
        print(f"{name:<12} {100 * statistics.mean(r['top_1'] for r in runs):>7.1f} "
              f"{100 * statistics.mean(r['quantized_top_1'] for r in runs):>7.1f} {mean_drop:>+9.1f} "
              f"{f'{100 * max(drops):+.1f} ({max(images)} img)':>15} {met:>4} "
              f"{statistics.mean(quantize) if quantize else float('nan'):>10.1f} "
              f"{statistics.mean(convert) if convert else float('nan'):>9.1f}  "
              f"{converted_folds}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="folds 0 and 1, seed 0 (unless --folds/--seeds say)")
    parser.add_argument("--only", help=f"datasets, comma-separated (default all: {', '.join(datasets.DATASETS)})")
    parser.add_argument("--framework", choices=("keras", "torch", "both"), default="both")
    parser.add_argument("--methods", help="methods, comma-separated (default all of the frameworks': "
                                          f"{', '.join(m for ms in METHODS.values() for m in ms)})")
    parser.add_argument("--folds", help=f"folds to run, comma-separated (of {FOLDS}; default all)")
    parser.add_argument("--seeds", help="seeds, comma-separated (default 0,1,2)")
    parser.add_argument("--quantize", action="store_true",
                        help="tl's default runs also quantize; Sony's converter on the first fold per dataset only")
    parser.add_argument("--guide-fine-tune-epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "accuracy-results.json")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --out and skip them")
    parser.add_argument("--report", action="store_true", help="only print the tables of the runs in --out")
    parser.add_argument("--root", type=Path, default=None, help="datasets' folder (default: bench/datasets.py's)")
    parser.add_argument("--workdir", type=Path, help="parent folder of the runs' outputs (default: the temp folder)")
    args = parser.parse_args()
    args.only = args.only.split(",") if args.only else list(datasets.DATASETS)
    unknown = set(args.only) - set(datasets.DATASETS)
    if unknown:
        parser.error(f"--only: unknown datasets {sorted(unknown)}; use {', '.join(datasets.DATASETS)}")
    args.frameworks = ("keras", "torch") if args.framework == "both" else (args.framework,)
    every = [m for framework in args.frameworks for m in METHODS[framework]]
    args.methods = args.methods.split(",") if args.methods else every
    if set(args.methods) - set(every):
        parser.error(f"--methods: unknown {sorted(set(args.methods) - set(every))}; use {', '.join(every)}")
    args.folds = tuple(int(f) for f in args.folds.split(",")) if args.folds else (
        QUICK_FOLDS if args.quick else tuple(range(FOLDS)))
    args.seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else (
        QUICK_SEEDS if args.quick else SEEDS)
    if args.root is None:
        args.root = datasets.DEFAULT_ROOT
    if "torch" in args.frameworks and not TORCH_WEIGHTS.exists() and not args.report:
        parser.error(f"no ImageNet MobileNetV2 weights for torch at {TORCH_WEIGHTS}: real features are needed; put "
                     "them there (torchvision downloads them there when it can)")
    if "keras" in args.frameworks and not probe.WEIGHTS.exists() and not args.report:
        parser.error(f"no ImageNet MobileNetV2 weights in Keras' cache ({probe.WEIGHTS}): real features are needed; "
                     "run once where Keras can download them, or copy that file there")

    started = time.monotonic()
    if args.report:
        records = json.loads(args.out.read_text())["runs"]
    else:
        print(f"{len(plan(args))} runs: datasets {', '.join(args.only)}; folds {args.folds} of {FOLDS}; seeds "
              f"{args.seeds}; methods {', '.join(args.methods)}; MobileNetV2 1.0 at {SIZE} px, ImageNet weights; "
              f"{os.cpu_count()} cores; raw results -> {args.out}", flush=True)
        for name in args.only:
            print(f"  {name}: {datasets.DATASETS[name]}")
        records = execute(args)
    report(records, args)
    print(f"\nIn all {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
