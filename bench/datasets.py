"""Real-photo image-classification datasets for the benchmark, built from a Debian package.

    python bench/datasets.py                       # builds all into ~/.cache/tl-bench/datasets
    python bench/datasets.py --root DIR --only fewshot,many

Source: the Debian package gcompris-qt-data (GCompris, the KDE educational suite), whose Qt
resource files (/usr/share/gcompris-qt/rcc/*.rcc) hold categorised photographs, each recorded in a
README beside it (Copyright = author, Source, License, Comments). Only photos under Public Domain,
CC0-1.0 or CC-BY (no ShareAlike, no GPL) are used; a photo found twice (same source) is used once.
The package is installed with apt-get if its files are absent.

Each dataset is laid out as tl expects:
    <root>/<name>/training/<class>/*.jpg, <root>/<name>/validation/<class>/*.jpg,
    <root>/<name>/labels.json (sorted class names -> 0..n-1), <root>/<name>/CREDITS.json
Images: downscaled so the short side is at most 256 px, JPEG quality 90, no metadata. Some
datasets add "views" of a photo (a seeded random crop of 55-80 % of each side, maybe mirrored):
all views of one photo always fall in the same split (splits are grouped by photo), so no photo
is both trained and validated on.

build(name, root) writes <root>/<name>, whose validation split is fold 0 of the 4-fold split;
folds(name, k, fold, root) writes <root>/<name>-k<k>-f<fold> with fold `fold` of a stratified,
grouped, seeded K-fold split of all the dataset's images as validation. Everything is
deterministic (sorted lists, fixed seeds): the same package version gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

PACKAGE = "gcompris-qt-data"
RCC_DIR = Path("/usr/share/gcompris-qt/rcc")
DEFAULT_ROOT = Path("~/.cache/tl-bench/datasets").expanduser()
SEED = 20240
DEFAULT_K = 4
SHORT_SIDE = 256
QUALITY = 90
FORMAT = 3  # bump when the pipeline's output changes, so cached folders are rebuilt

LICENCES = {
    "Public Domain": "https://creativecommons.org/publicdomain/mark/1.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
}

# Activities whose rasters are not photographs or not permissively licensed as a whole
# (paintings: GPL via the WebMuseum; details: mostly CC-BY-SA crops of paintings/photos).
SKIP_RCC = {"paintings.rcc", "details.rcc", "lang.rcc"}

# Classes: name -> regular expressions on "<rcc file>:<path inside it, after /activities/>".
A = r"(?:categorization|explore_monuments)\.rcc:"
CLASSES = {
    "fish": [r"categorization\.rcc:.*/fishes/fish\d+\."],
    "underwater": [r"clickgame\.rcc:.*/sea\d+\."],
    "wind_turbine": [r"categorization\.rcc:.*/renewable/windmill\d*\."],
    "solar": [r"categorization\.rcc:.*/renewable/solar\d*\."],
    "dam": [r"categorization\.rcc:.*/renewable/(dam\d*|geothermal)\."],
    "hammer": [r"categorization\.rcc:.*/tools/hammer\d*\."],
    "measuring_tape": [r"categorization\.rcc:.*/tools/measuringTape\d*\."],
    "pliers": [r"categorization\.rcc:.*/tools/(plier\d*|sideCutter|nailCutter)\."],
    "cutting_tool": [r"categorization\.rcc:.*/tools/(scissors\d*|cuttingTool|sickle)\."],
    "hand_tool_other": [r"categorization\.rcc:.*/tools/(screwDriver\d*|multimeter\d*|spray|tweezer\d*|wrench\d*)\."],
    "monument_india": [r"explore_monuments\.rcc:.*/india/",
                       r"categorization\.rcc:.*/monuments/(IndiaGate|kutubMinar|tajMahal|victoriaMemorial)\."],
    "monument_usa": [r"explore_monuments\.rcc:.*/usa/",
                     r"categorization\.rcc:.*/monuments/(empireState|mountRushmore|statueOfLiberty|usCapitol)\."],
    "monument_france": [r"explore_monuments\.rcc:.*/france/",
                        r"categorization\.rcc:.*/monuments/(arcDeTriomphe|eiffelTower|leMusee)\."],
    "monument_germany": [r"explore_monuments\.rcc:.*/germany/",
                         r"categorization\.rcc:.*/monuments/brandenburgGate\."],
    "pyramid": [r"explore_monuments\.rcc:.*/egypt/", r"categorization\.rcc:.*/monuments/greatPyramid\."],
    "monument_other": [r"explore_monuments\.rcc:.*/wonders/",
                       r"categorization\.rcc:.*/monuments/(bayterek|burj|cathedral|christTheRedeemer|colosseum"
                       r"|greatWall|jucheTower|leaningTowerOfPisa|monument\d*|operaHouse|parthenon|zimniPalace)\."],
    "farm_animal": [r"explore_farm_animals\.rcc:.*/animals/"],
    "wild_animal": [r"explore_world_animals\.rcc:.*/animals/", r"erase\.rcc:"],
    "instrument": [r"explore_world_music\.rcc:"],
    "planet": [r"solar_system\.rcc:"],
    "kitchenware": [r"categorization\.rcc:.*/others/(buffetset|bucket|cup|knife|pan|plate|spoons)\."],
    "household_object": [r"categorization\.rcc:.*/others/(baseball|blackslate|bulb|chair|erasers|igloo|pencil"
                         r"|pillow|volleyball|weighingMachine)\."],
}
MONUMENTS = ["monument_india", "monument_usa", "monument_france", "monument_germany", "pyramid", "monument_other"]
TOOLS = ["hammer", "measuring_tape", "pliers", "cutting_tool", "hand_tool_other"]
ENERGY = ["wind_turbine", "solar", "dam"]
ANIMALS = ["farm_animal", "wild_animal"]

# Each dataset: classes (its name -> list of CLASSES entries merged into it), photos per class at
# most (first ones by sorted path after a seeded shuffle), and views per photo (1 = the photo only).
SPECS = {
    "fewshot": dict(
        kind="fewshot: <= 10 training images per class",
        description="7 fine-grained classes of tools and power plants, 4-13 photos each",
        classes={c: [c] for c in ["hammer", "measuring_tape", "pliers", "cutting_tool", "wind_turbine", "solar", "dam"]},
        max_photos=13, views=1),
    "small": dict(
        kind="small: 20-50 training images per class",
        description="5 coarse classes (fish, monument, animal, tool, power plant), 2 views of up to 27 photos each",
        classes={"fish": ["fish"], "monument": MONUMENTS, "animal": ANIMALS, "tool": TOOLS, "power_plant": ENERGY},
        max_photos=27, views=2),
    "many": dict(
        kind="many: >= 20 classes",
        description="22 classes (monuments by country, tool kinds, power plants, animals, objects...), one image per photo",
        classes={c: [c] for c in CLASSES},
        max_photos=30, views=1),
    "imbalanced": dict(
        kind="imbalanced: largest training class >= 10x the smallest",
        description="6 classes, monuments 3 views of each photo, tools 2, objects, power plants, instruments and planets 1",
        classes={"monument": MONUMENTS, "tool": TOOLS, "object": ["kitchenware", "household_object"],
                 "power_plant": ENERGY, "instrument": ["instrument"], "planet": ["planet"]},
        max_photos=60, views={"monument": 3, "tool": 2, "object": 1, "power_plant": 1, "instrument": 1, "planet": 1}),
}
DATASETS = {name: f"{spec['kind']}; {spec['description']}; real photos from Debian's {PACKAGE}"
            for name, spec in SPECS.items()}


# ---------------------------------------------------------------- the package and its resources

def ensure_package() -> bool:
    """Install gcompris-qt-data with apt-get if its files are absent; False if they stay absent."""
    if RCC_DIR.is_dir() and any(RCC_DIR.glob("*.rcc")):
        return True
    apt = shutil.which("apt-get")
    if apt is None or (hasattr(os, "geteuid") and os.geteuid() != 0):
        print(f"datasets: {RCC_DIR} is absent and apt-get is unavailable (or not root): "
              f"install the Debian package {PACKAGE} to build the datasets", file=sys.stderr)
        return False
    cmd = [apt, "install", "-y", "--no-install-recommends", PACKAGE]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"datasets: installing {PACKAGE} with apt-get", file=sys.stderr)
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run([apt, "update"], env=env)
        subprocess.run(cmd, env=env)
    return RCC_DIR.is_dir() and any(RCC_DIR.glob("*.rcc"))


def package_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def read_rcc(data: bytes) -> dict[str, bytes]:
    """Files of a Qt resource file (rcc format 1-3): path -> content (zlib/zstd inflated)."""
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    entry = 14 if version < 2 else 22
    files: dict[str, bytes] = {}

    def name(offset):
        length = struct.unpack(">H", data[names + offset:names + offset + 2])[0]
        return data[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(index, prefix):
        base = tree + index * entry
        name_offset, flags = struct.unpack(">IH", data[base:base + 6])
        path = f"{prefix}/{name(name_offset)}" if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", data[base + 6:base + 14])
            for child in range(first, first + count):
                walk(child, path)
            return
        offset = struct.unpack(">I", data[base + 10:base + 14])[0]
        size = struct.unpack(">I", data[payload + offset:payload + offset + 4])[0]
        blob = data[payload + offset + 4:payload + offset + 4 + size]
        if flags & 1:
            blob = zlib.decompress(blob[4:])
        elif flags & 4:
            import zstandard  # only rcc files written with zstd need it; gcompris-qt-data 3.1 uses zlib
            blob = zstandard.ZstdDecompressor().decompress(blob)
        files[path] = blob

    walk(0, "")
    return files


def parse_readme(text: str) -> list[dict]:
    """GCompris's README records: blocks of 'Field: value' lines separated by blank lines."""
    records, current, key = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                records.append(current)
            current, key = {}, None
            continue
        m = re.match(r"^(Copyright|Source|License|Licence|Comments?|Files):\s*(.*)$", line)
        if m:
            key = {"Licence": "License", "Comments": "Comment"}.get(m.group(1), m.group(1)).lower()
            value = m.group(2).strip()
            if key == "files":
                current.setdefault("files", []).extend(value.split())
            elif value:
                current[key] = value
        elif key == "files":
            current["files"].extend(line.split())
        elif key:
            current[key] = (current.get(key, "") + " " + line.strip()).strip()
    return records


def licence_id(text: str) -> str | None:
    """Normalised permissive licence, or None (ShareAlike, GPL, unknown: not used)."""
    t = text.strip().lower().replace("_", "-")
    if "sa" in re.split(r"[^a-z]+", t) or "gpl" in t:
        return None
    if t.startswith("public domain"):
        return "Public Domain"
    if t.startswith("cc0"):
        return "CC0-1.0"
    m = re.match(r"^cc[- ]by[- ]([234])\.0$", t)
    return f"CC-BY-{m.group(1)}.0" if m else None


def catalogue() -> list[dict]:
    """Every permissively licensed raster photo of the package, sorted, with its record."""
    photos, seen = [], set()
    for rcc in sorted(RCC_DIR.glob("*.rcc")):
        if rcc.name in SKIP_RCC:
            continue
        files = read_rcc(rcc.read_bytes())
        readmes = {p: parse_readme(b.decode("utf-8", "replace")) for p, b in files.items() if p.endswith("/README")}
        for path in sorted(files):
            if not re.search(r"\.(webp|jpe?g|png)$", path, re.I):
                continue
            record, folder = None, os.path.dirname(path)
            while folder not in ("", "/") and record is None:
                for r in readmes.get(folder + "/README", []):
                    if path[len(folder) + 1:] in r.get("files", []) or os.path.basename(path) in r.get("files", []):
                        record = r
                        break
                folder = os.path.dirname(folder)
            if not record or not licence_id(record.get("license", "")):
                continue
            source = record.get("source", "")
            digest = hashlib.sha256(files[path]).hexdigest()
            if digest in seen or (source and source in seen):
                continue  # the same photo used by two activities
            seen.update({digest, source} - {""})
            photos.append(dict(key=f"{rcc.name}:{path.split('/activities/', 1)[-1]}", rcc=rcc.name, path=path,
                               data=files[path], author=record.get("copyright", ""),
                               licence=licence_id(record["license"]), source=source,
                               comment=record.get("comment", "")))
    return photos


# ---------------------------------------------------------------- images

def _view(data: bytes, key: str, view: int) -> bytes:
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im)
        im = im.convert("RGB")
    if view:
        rng = random.Random(f"{SEED}:{key}:{view}")
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.55, 0.8)), int(h * rng.uniform(0.55, 0.8))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        im = im.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
    scale = SHORT_SIDE / min(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=QUALITY)  # no exif/icc passed: no metadata
    return out.getvalue()


def _stem(key: str) -> str:
    rcc, path = key.split(":", 1)
    base = re.sub(r"\.(webp|jpe?g|png)$", "", path.split("/resource/")[-1], flags=re.I)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", rcc[:-4] + "_" + base)


# ---------------------------------------------------------------- pools, splits, folders

def _fingerprint(name: str, version: str) -> str:
    spec = SPECS[name]
    text = json.dumps([FORMAT, SEED, version, {k: v for k, v in spec.items() if k != "description"}], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pool(name: str, root: Path) -> tuple[Path, list[dict]]:
    """All images of a dataset (processed once) and their records, under <root>/.pool/<name>."""
    version = package_version()
    pool = root / ".pool" / name
    stamp = pool / "items.json"
    fp = _fingerprint(name, version)
    if stamp.is_file():
        saved = json.loads(stamp.read_text())
        if saved.get("fingerprint") == fp:
            return pool, saved["items"]
    if not ensure_package():
        raise SystemExit(1)
    spec = SPECS[name]
    photos = catalogue()
    if pool.exists():
        shutil.rmtree(pool)
    items = []
    for cls in sorted(spec["classes"]):
        patterns = [p for c in spec["classes"][cls] for p in CLASSES[c]]
        chosen = [ph for ph in photos if any(re.search(p, ph["key"]) for p in patterns)]
        random.Random(f"{SEED}:{name}:{cls}").shuffle(chosen)
        chosen = sorted(chosen[:spec["max_photos"]], key=lambda ph: ph["key"])
        views = spec["views"][cls] if isinstance(spec["views"], dict) else spec["views"]
        for ph in chosen:
            for v in range(views):
                rel = f"{cls}/{_stem(ph['key'])}{'_v%d' % v if v else ''}.jpg"
                dest = pool / "images" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(_view(ph["data"], ph["key"], v))
                changes = "by GCompris: " + ph["comment"] + "; " if ph["comment"] else ""
                changes += ("here: a random crop" + (" (mirrored)" if _mirrored(ph["key"], v) else "") + ", " if v else "here: ")
                items.append(dict(
                    image=rel, cls=cls, group=ph["key"], package=PACKAGE, version=version,
                    origin=f"{PACKAGE}:{RCC_DIR}/{ph['rcc']}!{ph['path']}", author=ph["author"],
                    licence=ph["licence"], licence_url=LICENCES[ph["licence"]], source=ph["source"],
                    changes=changes + f"downscaled to a short side of at most {SHORT_SIDE} px, "
                                      f"re-encoded as JPEG quality {QUALITY} without metadata"))
    stamp.write_text(json.dumps(dict(fingerprint=fp, items=items), indent=1))
    return pool, items


def _mirrored(key: str, view: int) -> bool:
    rng = random.Random(f"{SEED}:{key}:{view}")
    for _ in range(4):
        rng.random()  # the same draws as _view: two uniforms, two randints, then the flip
    return rng.random() < 0.5


def split(items: list[dict], k: int, fold: int) -> dict[str, str]:
    """image -> 'training' or 'validation': fold `fold` of a stratified K-fold split grouped by
    photo (all views of a photo in one fold), seeded and deterministic."""
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in 0..{k - 1}")
    out = {}
    for cls in sorted({it["cls"] for it in items}):
        groups = sorted({it["group"] for it in items if it["cls"] == cls})
        random.Random(f"{SEED}:split:{cls}").shuffle(groups)
        where = {g: i % k for i, g in enumerate(groups)}
        for it in items:
            if it["cls"] == cls:
                out[it["image"]] = "validation" if where[it["group"]] == fold else "training"
    return out


def _write(name: str, root: Path, folder: Path, k: int, fold: int) -> Path:
    pool, items = _pool(name, root)
    fp = f"{_fingerprint(name, items[0]['version'] if items else '')}:{k}:{fold}"
    stamp = folder / ".tl-bench-dataset"
    if stamp.is_file() and stamp.read_text() == fp:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    where = split(items, k, fold)
    credits = []
    for it in items:
        rel = f"{where[it['image']]}/{it['image']}"
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(pool / "images" / it["image"], dest)
        except OSError:
            shutil.copyfile(pool / "images" / it["image"], dest)
        credits.append(dict(file=rel, **{key: it[key] for key in (
            "cls", "package", "version", "origin", "author", "licence", "licence_url", "source", "changes")}))
    for c in credits:
        c["class"] = c.pop("cls")
    credits.sort(key=lambda c: c["file"])
    classes = sorted({it["cls"] for it in items})
    (folder / "labels.json").write_text(json.dumps({c: i for i, c in enumerate(classes)}, indent=1) + "\n")
    (folder / "CREDITS.json").write_text(json.dumps(dict(
        dataset=name, description=DATASETS[name], split=f"fold {fold} of a {k}-fold split grouped by photo (seed {SEED})",
        licences=LICENCES, images=credits), indent=1, ensure_ascii=False) + "\n")
    stamp.write_text(fp)
    return folder


def build(name: str, root: Path | str = DEFAULT_ROOT) -> Path:
    """<root>/<name>, validation = fold 0 of the 4-fold split."""
    if name not in SPECS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(SPECS)}")
    root = Path(root).expanduser()
    return _write(name, root, root / name, DEFAULT_K, 0)


def folds(name: str, k: int, fold: int, root: Path | str = DEFAULT_ROOT) -> Path:
    """<root>/<name>-k<k>-f<fold>: fold `fold` of the seeded stratified K-fold split as validation."""
    if name not in SPECS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(SPECS)}")
    root = Path(root).expanduser()
    return _write(name, root, root / f"{name}-k{k}-f{fold}", k, fold)


def summary(folder: Path) -> dict:
    credits = json.loads((folder / "CREDITS.json").read_text())["images"]
    labels = json.loads((folder / "labels.json").read_text())
    train = Counter(c["class"] for c in credits if c["file"].startswith("training/"))
    counts = [train.get(c, 0) for c in labels]
    return dict(classes=len(labels), train_min=min(counts), train_median=statistics.median(counts),
                train_max=max(counts), training=sum(counts),
                validation=sum(1 for c in credits if c["file"].startswith("validation/")),
                licences=dict(sorted(Counter(c["licence"] for c in credits).items())))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"where to build (default {DEFAULT_ROOT})")
    parser.add_argument("--only", default="", help="comma-separated names (default: all): " + ",".join(SPECS))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SPECS)
    for n in names:
        if n not in SPECS:
            parser.error(f"unknown dataset {n!r}; known: {', '.join(SPECS)}")
    if not ensure_package():
        return 1
    rows = []
    for n in names:
        start = time.perf_counter()
        folder = build(n, args.root)
        s = summary(folder)
        rows.append((n, s, time.perf_counter() - start, folder))
    print(f"{'name':<11} {'classes':>7} {'train min/med/max':>18} {'train':>6} {'val':>5}  licences")
    for n, s, secs, folder in rows:
        lic = ", ".join(f"{v} {k}" for k, v in s["licences"].items())
        mmm = f"{s['train_min']}/{s['train_median']:g}/{s['train_max']}"
        print(f"{n:<11} {s['classes']:>7} {mmm:>18} {s['training']:>6} {s['validation']:>5}  {lic}")
    print(f"built under {Path(args.root).expanduser()} in {sum(r[2] for r in rows):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
