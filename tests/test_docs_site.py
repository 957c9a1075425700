"""The documentation site builds in strict mode: no broken link, no unknown anchor, no page left out."""

import subprocess
import sys

from tests.conftest import REPO


def test_the_documentation_site_builds_without_a_warning(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                             "-d", str(tmp_path / "site")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def test_every_page_in_docs_is_in_the_navigation():
    import re

    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M))
    assert listed == {path.name for path in (REPO / "docs").glob("*.md")}
