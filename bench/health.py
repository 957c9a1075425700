"""How well tl's data check (``tl check``, tlcore/health.py) finds planted flaws in the real-photo datasets.

    python bench/health.py [--only fewshot,small,many,imbalanced] [--root DIR] [--flips 8] [--seed 0] [--keep]

For each benchmark dataset of bench/datasets.py (``build(name, root)``: ``<root>/<name>`` with training/,
validation/, labels.json and CREDITS.json; default root ~/.cache/tl-bench/datasets), the venv's ``tl check`` runs
as a subprocess, with a configuration of only ``dataset_training_dir``, ``dataset_validation_dir``, ``output_dir``,
``evaluate_result_dir`` (in a temporary folder) and ``"seed": 0``, on

1. the clean dataset: every image finding there is a false alarm, except a within-split duplicate of two views of
   one photo (``small`` and ``imbalanced`` add seeded crops of a photo by design, bench/DATASETS.md "Views"; the
   photo of each file is its ``origin`` in CREDITS.json), which is counted apart as expected;
2. a copy with planted flaws (:func:`plant`): duplicates of training images, each kind both across the splits
   (the copy in validation) and within training (the copy beside its original): an exact copy of the file, the
   photo re-encoded at JPEG quality 70, resized to 60 %, and cropped by 8 % of each side's length (off-centre);
   and label flips: ``--flips`` training images moved to another class's folder.

Its data_health.json is scored (:func:`score`): the planted duplicates found / planted by kind of copy (goal
>= 90 %), each planted flip's rank among the likely-mislabelled findings (goal: among the first) and how many
were found, the findings on the clean dataset by kind (false alarms; views of one photo; class findings), and the
seconds each ``tl check`` took (wall clock of the subprocess: loading TensorFlow and the base model, the
features, the head search, the out-of-fold heads and the check). A summary table of all datasets ends the output.
:func:`plant` and :func:`score` are reusable on any dataset folder and any list of findings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import datasets  # noqa: E402
from tlcore import health  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
TRANSFORMS = ("exact", "jpeg_q70", "resize_60", "crop_8")
SCOPES = ("across", "within")
PER_CASE = 2
"""Planted duplicates per transform and scope."""
DATASETS = ("fewshot", "small", "many", "imbalanced")
CLASS_KINDS = ("few_images", "imbalance")
"""Findings about classes, not images: properties of a dataset (fewshot and many are few-shot by design,
imbalanced is imbalanced), never false alarms."""


def images_of(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def plant(dataset_dir: Path, out_dir: Path, seed: int, flips: int = 8, per_case: int = PER_CASE) -> dict:
    """Copy the dataset ``dataset_dir`` to ``out_dir`` and plant flaws in the copy; return them:
    ``{"duplicates": [{"transform", "scope", "original", "copy"}], "flips": [{"path", "given", "true"}]}``
    (absolute paths in ``out_dir``; ``given`` is the wrong class a flipped image now sits in).

    Every planted image is made from a different training original, and no original is also flipped, so
    each case is scored on its own."""
    from PIL import Image

    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir).resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(dataset_dir, out_dir)
    rng = random.Random(seed)
    classes = sorted(p.name for p in (out_dir / "training").iterdir() if p.is_dir())
    training = images_of(out_dir / "training")
    needed = len(TRANSFORMS) * len(SCOPES) * per_case + flips
    if len(training) < needed:
        raise SystemExit(f"{dataset_dir}: {len(training)} training images, {needed} needed to plant")
    chosen = rng.sample(training, needed)
    planted: dict = {"duplicates": [], "flips": []}
    for number, (transform, scope) in enumerate((t, s) for t in TRANSFORMS for s in SCOPES for _ in range(per_case)):
        original = chosen[number]
        label = original.parent.name
        folder = out_dir / ("validation" if scope == "across" else "training") / label
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / f"planted_{transform}_{scope}_{number}{original.suffix if transform == 'exact' else '.jpg'}"
        if transform == "exact":
            shutil.copyfile(original, copy)
        else:
            with Image.open(original) as image:
                image = image.convert("RGB")
                width, height = image.size
                if transform == "resize_60":
                    image = image.resize((max(1, round(width * 0.6)), max(1, round(height * 0.6))),
                                         Image.Resampling.BILINEAR)
                elif transform == "crop_8":
                    cut_w, cut_h = round(width * 0.08), round(height * 0.08)
                    left, top = rng.randint(0, cut_w), rng.randint(0, cut_h)
                    image = image.crop((left, top, left + width - cut_w, top + height - cut_h))
                image.save(copy, "JPEG", quality=70 if transform == "jpeg_q70" else 90)
        planted["duplicates"].append({"transform": transform, "scope": scope, "original": str(original),
                                      "copy": str(copy)})
    for original in chosen[len(TRANSFORMS) * len(SCOPES) * per_case:]:
        true = original.parent.name
        given = rng.choice([name for name in classes if name != true])
        moved = out_dir / "training" / given / f"flipped_{original.name}"
        moved.parent.mkdir(parents=True, exist_ok=True)
        os.replace(original, moved)
        planted["flips"].append({"path": str(moved), "given": given, "true": true})
    return planted


def duplicate_groups(findings) -> dict[str, int]:
    """path -> group number: images joined by duplicate findings (tlcore.health's groups, numbered)."""
    groups = health.duplicate_groups(findings)
    numbers = {group: number for number, group in enumerate(sorted(set(groups.values())))}
    return {path: numbers[group] for path, group in groups.items()}


def score(findings, planted: dict, photo_of: dict[str, str] | None = None) -> dict:
    """How ``findings`` (:class:`tlcore.health.Finding`) match the ``planted`` cases of :func:`plant`
    (``{"duplicates": [], "flips": []}`` for a clean dataset): duplicates found (the copy in one duplicate group
    with its original) per transform and scope and in all, each planted flip's rank among the likely-mislabelled
    findings (None: not found) and the flips that are in a conflicting-labels duplicate, and the image findings
    that involve no planted image, by kind: false alarms, except duplicates of two images of one photo according
    to ``photo_of`` (path -> photo, :func:`photos`), which are counted as ``same_photo``. Class findings
    (:data:`CLASS_KINDS`) are counted as ``classes``."""
    groups = duplicate_groups(findings)
    found = {}
    for case in planted["duplicates"]:
        key = f"{case['transform']}/{case['scope']}"
        hit = case["original"] in groups and groups.get(case["copy"]) == groups[case["original"]]
        found.setdefault(key, [0, 0])
        found[key][0] += hit
        found[key][1] += 1
    mislabelled = [finding for finding in findings if finding.kind == "likely_mislabelled"]
    ranks = {}
    for flip in planted["flips"]:
        rank = next((i + 1 for i, finding in enumerate(mislabelled) if finding.paths[0] == flip["path"]), None)
        ranks[flip["path"]] = rank
    conflicting = {path for finding in findings if finding.kind == "duplicate_conflicting_labels"
                   for path in finding.paths}
    involved = {case[key] for case in planted["duplicates"] for key in ("original", "copy")}
    involved |= {flip["path"] for flip in planted["flips"]}
    photo_of = photo_of or {}
    alarms: dict[str, int] = {}
    same_photo: dict[str, int] = {}
    classes: dict[str, int] = {}
    for finding in findings:
        if finding.kind in CLASS_KINDS:
            classes[finding.kind] = classes.get(finding.kind, 0) + 1
        elif finding.paths and not set(finding.paths) & involved:
            counts = same_photo if of_one_photo(finding, photo_of) else alarms
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
    hits = sum(hit for hit, _ in found.values())
    total = sum(count for _, count in found.values())
    return {"duplicates_found": hits, "duplicates_planted": total, "duplicate_recall": hits / max(total, 1),
            "by_case": {key: f"{hit}/{count}" for key, (hit, count) in sorted(found.items())},
            "flip_ranks": ranks, "flips_found": sum(rank is not None for rank in ranks.values()),
            "flips_planted": len(ranks), "flips_in_conflicting_duplicates": len(set(ranks) & conflicting),
            "mislabelled_findings": len(mislabelled), "false_alarms": alarms, "same_photo": same_photo,
            "classes": classes}


def of_one_photo(finding, photo_of: dict[str, str]) -> bool:
    """Whether ``finding`` is a pair of two images made from one photo (``photo_of``: :func:`photos`)."""
    shown = {photo_of.get(path) for path in finding.paths}
    return len(finding.paths) == 2 and len(shown) == 1 and None not in shown


def photos(dataset_dir: Path) -> dict[str, str]:
    """Image path (resolved, as in the findings of a check of ``dataset_dir``) -> the photo it was made from
    (its ``origin`` in ``dataset_dir``/CREDITS.json; views of one photo share it); empty without CREDITS.json."""
    dataset_dir = Path(dataset_dir).resolve()
    credits = dataset_dir / "CREDITS.json"
    if not credits.is_file():
        return {}
    return {str(dataset_dir / entry["file"]): entry["origin"] for entry in json.loads(credits.read_text())["images"]}


def tl_executable() -> str:
    """The venv's ``tl`` (REPO/.venv/bin/tl), else the ``tl`` on the PATH."""
    local = REPO / ".venv" / "bin" / "tl"
    found = str(local) if local.is_file() else shutil.which("tl")
    if not found:
        raise SystemExit("no tl: neither .venv/bin/tl nor tl on the PATH")
    return found


def run_check(dataset_dir: Path, work: Path, tl: str) -> tuple[list, dict, float, str]:
    """``tl check`` of ``dataset_dir`` with a configuration of its own in ``work`` (outputs there too):
    ``(findings as tlcore.health.Finding, data_health.json's "checked", wall seconds, tl's output)``."""
    dataset_dir = Path(dataset_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    configuration = work / "configuration.json"
    configuration.write_text(json.dumps({
        "dataset_training_dir": str(dataset_dir / "training"),
        "dataset_validation_dir": str(dataset_dir / "validation"),
        "output_dir": str(work / "output"), "evaluate_result_dir": str(work / "evaluation"), "seed": 0}, indent=1))
    began = time.perf_counter()
    done = subprocess.run([tl, "check", str(configuration)], cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    output = done.stdout + done.stderr
    (work / "tl-check.log").write_text(output)
    if done.returncode:
        raise SystemExit(f"tl check {configuration} exited with {done.returncode}:\n{output[-3000:]}")
    report = json.loads((work / "evaluation" / health.HEALTH_JSON).read_text())
    findings = [health.Finding(entry["kind"], tuple(os.path.realpath(p) for p in entry["paths"]),
                               tuple(entry["splits"]), tuple(entry["labels"]), entry["detail"], entry["score"])
                for entry in report["findings"]]
    return findings, report["checked"], seconds, output


def bench(name: str, root: Path, work: Path, tl: str, flips: int, seed: int) -> dict:
    """Build (or find) dataset ``name``, check it clean and planted, print its table; return its figures."""
    dataset = datasets.build(name, root).resolve()
    counts = {split: len(images_of(dataset / split)) for split in health.SPLITS}
    print(f"\n== {name}: {dataset} ({counts['training']} training, {counts['validation']} validation images)",
          flush=True)
    photo_of = photos(dataset)
    clean_findings, clean_checked, clean_seconds, clean_log = run_check(dataset, work / name / "clean", tl)
    clean = score(clean_findings, {"duplicates": [], "flips": []}, photo_of)
    planted = plant(dataset, work / name / "planted", seed, flips=flips)
    planted_photos = photos(work / name / "planted")
    findings, checked, seconds, log = run_check(work / name / "planted", work / name / "planted-check", tl)
    result = score(findings, planted, planted_photos)

    print(f"tl check: clean {clean_seconds:.1f} s, planted {seconds:.1f} s (of which the check itself "
          f"{clean_checked['seconds']:.2f} s and {checked['seconds']:.2f} s; {checked['pairs_verified']} pairs "
          f"verified, out-of-fold heads on {checked.get('label_check_images', '?')} training images)")
    for line in (clean_log + log).splitlines():
        if line.startswith("Head search"):
            print(f"  {line}")
    print(f"duplicates found / planted: {result['duplicates_found']}/{result['duplicates_planted']} "
          f"({result['duplicate_recall']:.0%}; goal >= 90%)")
    print(f"  {'copy':<10} {'across':>7} {'within':>7}   cosine of each copy and its original (-: not a finding)")
    edges = {frozenset(finding.paths): finding.score for finding in findings if finding.kind.startswith("duplicate_")}
    for transform in TRANSFORMS:
        cosines = [edges.get(frozenset((case["original"], case["copy"]))) for case in planted["duplicates"]
                   if case["transform"] == transform]
        shown = " ".join(f"{value:.3f}" if value is not None else "-" for value in cosines)
        print(f"  {transform:<10} {result['by_case'].get(f'{transform}/across', '-'):>7} "
              f"{result['by_case'].get(f'{transform}/within', '-'):>7}   {shown}")
    ranks = sorted(rank for rank in result["flip_ranks"].values() if rank)
    missed = result["flips_planted"] - result["flips_found"]
    print(f"label flips found: {result['flips_found']}/{result['flips_planted']} among "
          f"{result['mislabelled_findings']} likely-mislabelled findings; ranks {ranks or '-'}"
          + (f"; not found {missed}" if missed else "")
          + (f"; {result['flips_in_conflicting_duplicates']} in a conflicting-labels duplicate"
             if result["flips_in_conflicting_duplicates"] else ""))
    print("clean dataset, findings by kind:")
    print(f"  {'kind':<30} {'false alarms':>12} {'views of one photo':>19}")
    for kind in health.KINDS:
        if kind not in CLASS_KINDS:
            print(f"  {kind:<30} {clean['false_alarms'].get(kind, 0):>12} {clean['same_photo'].get(kind, 0):>19}")
    print(f"  class findings (properties of the dataset): {clean['classes'] or 'none'}")
    for finding in clean_findings:
        if finding.kind not in CLASS_KINDS and not of_one_photo(finding, photo_of):
            print(f"    false alarm: {finding.kind} {', '.join(_short(p, dataset) for p in finding.paths)} "
                  f"score {finding.score:.3f}: {finding.detail}")
    print(f"planted dataset, findings that involve no planted image: false alarms "
          f"{result['false_alarms'] or 'none'}, views of one photo {result['same_photo'] or 'none'}")
    return {"name": name, "clean": clean, "planted": result, "seconds": (clean_seconds, seconds)}


def summary(rows: list[dict]) -> None:
    """One line per dataset: planted duplicates found (in all and per kind of copy), flips found and their ranks
    (- : not found), false alarms on the clean dataset by kind, its duplicates of views of one photo, seconds."""
    header = ["dataset", "duplicates", *TRANSFORMS, "flips", "flip ranks", "clean: false alarms", "views",
              "s clean", "s planted"]
    lines = [header]
    for row in rows:
        result, clean = row["planted"], row["clean"]
        per_kind = []
        for transform in TRANSFORMS:
            cells = [result["by_case"][f"{transform}/{scope}"].split("/") for scope in SCOPES]
            per_kind.append(f"{sum(int(hit) for hit, _ in cells)}/{sum(int(count) for _, count in cells)}")
        ranks = ",".join(str(rank) if rank else "-" for rank in sorted(
            result["flip_ranks"].values(), key=lambda rank: (rank is None, rank or 0)))
        alarms = ", ".join(f"{kind} {count}" for kind, count in sorted(clean["false_alarms"].items())) or "0"
        lines.append([row["name"], f"{result['duplicates_found']}/{result['duplicates_planted']} "
                      f"({result['duplicate_recall']:.0%})", *per_kind,
                      f"{result['flips_found']}/{result['flips_planted']}", ranks, alarms,
                      str(sum(clean["same_photo"].values())), f"{row['seconds'][0]:.1f}", f"{row['seconds'][1]:.1f}"])
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    print()
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated datasets (default: all): " + ",".join(DATASETS))
    parser.add_argument("--root", type=Path, default=datasets.DEFAULT_ROOT,
                        help=f"where the datasets are (built if absent; default {datasets.DEFAULT_ROOT})")
    parser.add_argument("--flips", type=int, default=8, help="label flips planted per dataset")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planting")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (configurations, tl's "
                                                            "output, planted copies, data_health.*)")
    args = parser.parse_args(argv)
    names = [name for name in args.only.split(",") if name] or list(DATASETS)
    for name in names:
        if name not in DATASETS:
            parser.error(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    tl = tl_executable()
    work = Path(tempfile.mkdtemp(prefix="tl-health-bench-")).resolve()
    began = time.perf_counter()
    rows = []
    try:
        print(f"{tl} check, seed 0; planting seed {args.seed}, {args.flips} flips, {PER_CASE} duplicates per kind of "
              f"copy and scope")
        for name in names:
            rows.append(bench(name, args.root, work, tl, args.flips, args.seed))
        summary(rows)
        print(f"\ntotal {time.perf_counter() - began:.0f} s")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _short(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


if __name__ == "__main__":
    sys.exit(main())
