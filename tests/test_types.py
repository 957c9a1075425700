"""The core is type-checked: mypy over tlcore/ (settings in pyproject.toml) finds no error."""

import subprocess
import sys

from tests.conftest import REPO


def test_tlcore_type_checks():
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
