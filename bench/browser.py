"""How long summary.html takes to open in headless Chromium, for a run of 10 and of 1000 classes.

    python bench/browser.py

Each run is a `tl run` of the tests' pure-Python fake framework (tiny images, 2 training and 1 validation image
per class), so the page is a real run's; it is then opened 5 times in one headless Chromium (tests/browser.py,
the DevTools protocol on a pipe), each time from navigation to the load event, then with every lazily loaded
picture scrolled to and decoded. Prints the page's size and the median times.
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser import Browser  # noqa: E402
from tests.builders import write_labels  # noqa: E402
from tests.conftest import touch_images  # noqa: E402


def run(root: Path, classes: int) -> Path:
    import tests.fake_framework
    from tlcore.api import train

    names = [f"class_{index:04d}" for index in range(classes)]
    touch_images(root / "data" / "training", names, per_class=2)
    touch_images(root / "data" / "validation", names, per_class=1)
    write_labels(root / "data", {name: index for index, name in enumerate(names)})
    config = root / "configuration.json"
    config.write_text(json.dumps({"dataset_training_dir": "data/training", "dataset_validation_dir": "data/validation",
                                  "output_dir": "out", "evaluate_result_dir": "out", "framework": "fake",
                                  "epochs": 2, "input_tensor_size": 32, "batch_size": 8}))
    train(config, plugins=[tests.fake_framework])
    return root / "out" / "summary.html"


def main() -> None:
    for classes in (10, 1000):
        with tempfile.TemporaryDirectory() as work:
            page = run(Path(work), classes)
            loads, settled = [], []
            with Browser() as browser:
                for _ in range(5):
                    start = time.perf_counter()
                    browser.open(page)
                    loads.append(time.perf_counter() - start)
                    browser.evaluate("(async () => { for (const image of document.images) { image.scrollIntoView(); "
                                     "await image.decode().catch(() => null); } })()")
                    settled.append(time.perf_counter() - start)
                pictures = browser.evaluate("document.images.length")
            print(f"{classes} classes: summary.html {page.stat().st_size / 1024:.0f} KiB, {pictures} pictures; "
                  f"load event {statistics.median(loads) * 1000:.0f} ms, every picture decoded "
                  f"{statistics.median(settled) * 1000:.0f} ms (median of 5)", flush=True)


if __name__ == "__main__":
    main()
