"""Every package is type-checked: mypy over tlcore, tlplugins and tlcli (settings in pyproject.toml) finds no error.

mypy finds packages by folder name, and tlplugins and tlcli install from the folders plugins/ and cli/; the
test shows it the packages under their import names, through symbolic links."""

import subprocess
import sys

from tests.conftest import REPO
from tests.test_imports import PACKAGES


def test_every_package_type_checks(tmp_path):
    for name, folder in PACKAGES.items():
        (tmp_path / name).symlink_to(folder, target_is_directory=True)
    packages = [argument for name in PACKAGES for argument in ("-p", name)]
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--config-file",
                             str(REPO / "pyproject.toml"), "--cache-dir", str(REPO / ".mypy_cache"), *packages],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
