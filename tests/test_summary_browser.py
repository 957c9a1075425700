"""summary.html in a real browser: headless Chromium (Debian's package) opens the page of a real run from disk, with no
console error, every image loaded, every link resolving, and a laptop-size layout without horizontal overflow; the
same for a run of 1000 classes, whose page stays under 5 MB. How long that page takes to open is measured by
bench/browser.py, not asserted here."""

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.browser import LAPTOP, Browser, find_chromium
from tests.conftest import touch_images
from tests.builders import write_labels

pytestmark = pytest.mark.browser

MAX_PAGE_BYTES = 5 * 1024 * 1024


@pytest.fixture(autouse=True)
def chromium():
    if find_chromium() is None:
        message = "no headless Chromium: apt-get install chromium (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def check_page(page, screenshot):
    """Open ``page``; assert what a user would see go wrong; return the screenshot's size in bytes."""
    with Browser() as browser:
        browser.open(page)
        # pictures below the fold load lazily (loading="lazy"), as a reader scrolls to them: scroll to each
        browser.evaluate("(async () => { for (const image of document.images) { image.scrollIntoView(); "
                         "await image.decode().catch(() => null); } window.scrollTo(0, 0); })()")
        images = browser.evaluate("[...document.images].map(image => [image.getAttribute('src'), "
                                  "image.complete, image.naturalWidth])")
        links = browser.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
        ids = set(browser.evaluate("[...document.querySelectorAll('[id]')].map(element => element.id)"))
        widths = browser.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth, "
                                  "Math.max(...[...document.body.querySelectorAll('*')].map(e => "
                                  "e.getBoundingClientRect().right))]")
        size = browser.screenshot(screenshot)
        errors = browser.console_errors()
    assert errors == [], errors
    assert images, "the page shows its figures"
    assert [image for image in images if not image[1] or image[2] <= 0] == [], "every image loaded"
    for link in links:
        parsed = urlparse(link)
        if parsed.scheme == "file":
            target = Path(unquote(parsed.path))
            if target == page and parsed.fragment:
                assert parsed.fragment in ids, f"a link to #{parsed.fragment}, which the page does not have"
            else:
                assert target.exists(), f"a link to {target}, which does not exist"
        else:
            assert parsed.scheme in ("http", "https", "mailto"), link
    scroll_width, client_width, rightmost = widths
    assert scroll_width <= client_width and rightmost <= LAPTOP[0], f"horizontal overflow: {widths}"
    return size


def test_the_summary_of_a_real_run_opens_cleanly_in_chromium(project, tmp_path):
    result = project.run()
    assert result.exit_code == 0, result.output
    page = project.root / "results" / "summary.html"
    size = check_page(page, tmp_path / "summary.png")
    assert size > 10_000, "a screenshot of a rendered page, not a blank one"


def test_the_summary_of_a_1000_class_run_stays_small_and_opens_cleanly(project, tmp_path):
    classes = [f"class_{index:04d}" for index in range(1000)]
    dataset = tmp_path / "many"
    touch_images(dataset / "training", classes, per_class=2)
    touch_images(dataset / "validation", classes, per_class=1)
    write_labels(dataset, {name: index for index, name in enumerate(classes)})
    result = project.run(config=project.write(dataset_training_dir=str(dataset / "training"),
                                              dataset_validation_dir=str(dataset / "validation"), epochs=1,
                                              data_check=False))
    assert result.exit_code == 0, result.output
    page = project.root / "results" / "summary.html"
    assert page.stat().st_size < MAX_PAGE_BYTES, f"{page.stat().st_size} bytes"
    check_page(page, tmp_path / "summary-1000.png")


def test_long_paths_wrap_instead_of_widening_the_page(project, tmp_path):
    """Images listed from a deep folder outside the listing's: the data check's table shows their whole paths,
    which must wrap within a laptop's width."""
    from tests.conftest import tiny_jpeg

    deep = tmp_path / ("a_very_long_folder_name_without_any_space_" * 4) / "photos"
    deep.mkdir(parents=True)
    rows = ["path,label,split"]
    for index in range(12):
        label = ("cat", "dog", "fox")[index % 3]
        (deep / f"{label}_{index:02d}_taken_on_a_long_summer_afternoon.jpg").write_bytes(tiny_jpeg((90, 90, 90)))
        rows.append(f"{deep}/{label}_{index:02d}_taken_on_a_long_summer_afternoon.jpg,{label},"
                    + ("validation" if index >= 9 else "training"))
    (project.root / "photos.csv").write_text("\n".join(rows) + "\n")
    result = project.run(config=project.write(dataset_training_dir="photos.csv", dataset_validation_dir="photos.csv"))
    assert result.exit_code == 0, result.output
    page = project.root / "results" / "summary.html"
    assert "a_very_long_folder_name_without_any_space_" * 4 in page.read_text(), "the page shows the long paths"
    check_page(page, tmp_path / "long-paths.png")
