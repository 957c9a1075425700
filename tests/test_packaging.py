"""What installing tl puts into site-packages: its own import names only, beside any other distribution."""

import json
import re
import shutil
import subprocess
import sys
import tomllib

from tests.conftest import REPO

INSTALLED = ("tlcore", "tlplugins", "tlcli")
"""The import names tl installs (the repository's tlcore/, plugins/ and cli/)."""


def test_every_folder_of_the_built_in_plugins_and_the_command_line_is_installed():
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: REPO / path for name, path in settings["package-dir"].items()} | {"tlcore": REPO / "tlcore"}
    expected = {".".join([name, *init.parent.relative_to(folder).parts])
                for name, folder in folders.items() for init in folder.rglob("__init__.py")}
    assert sorted(settings["packages"]) == sorted(expected)
    assert set(folders) == set(INSTALLED)


def test_tl_installs_beside_a_distribution_with_its_own_cli_and_plugins_packages(tmp_path):
    """``cli`` and ``plugins`` are common names: another distribution using them and tl both work."""
    source = tmp_path / "tl-source"
    for name in ("tlcore", "plugins", "cli"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    other = tmp_path / "other"
    (other / "cli").mkdir(parents=True)
    (other / "plugins").mkdir()
    (other / "cli" / "__init__.py").write_text('WHO = "other-cli"\n')
    (other / "plugins" / "__init__.py").write_text('WHO = "other-plugins"\n')
    (other / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "other-with-cli"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["cli", "plugins"]\n')
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(site), str(source), str(other)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr

    top_level = {path.name for path in site.iterdir() if not path.name.endswith(".dist-info")}
    assert top_level == {*INSTALLED, "cli", "plugins", "bin"}
    assert {path.name.split("-")[0] for path in site.glob("*.dist-info")} == {"tl_transfer", "other_with_cli"}

    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    theirs = subprocess.run([sys.executable, "-c", "import cli, plugins; print(cli.WHO, plugins.WHO, cli.__file__)"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert theirs.stdout.split()[:2] == ["other-cli", "other-plugins"], theirs.stderr
    assert theirs.stdout.split()[2].startswith(str(site))
    ours = subprocess.run([sys.executable, "-m", "tlcli", "plugins", "list", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr
    listing = json.loads(ours.stdout)
    builtins = [plugin for plugin in listing["plugins"] if plugin["builtin"]]
    assert len(builtins) > 20 and not [plugin for plugin in builtins if plugin.get("error")]
    models = subprocess.run([sys.executable, "-m", "tlcli", "models", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert models.returncode == 0, models.stderr
    assert any(record["imx500"] for record in json.loads(models.stdout)), "the IMX500 measurements are installed"
    where = subprocess.run([sys.executable, "-c", "import tlcli, tlplugins; print(tlcli.__file__, tlplugins.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert all(path.startswith(str(site)) for path in where.stdout.split()), where.stdout


def test_nothing_in_the_repository_imports_the_folders_by_their_generic_names():
    """Run from the repository, ``plugins`` and ``cli`` would import (its folders are there); installed, they are
    another distribution's. Code, tests, examples and docs use tlplugins and tlcli."""
    generic = re.compile(r"^\s*(from|import) (plugins|cli)\b|-m\W+cli\b|run_module\(\W+cli\b", re.M)
    found = []
    for path in REPO.rglob("*"):
        if path.suffix in (".py", ".md", ".sh", ".yaml", ".toml", ".ipynb") and ".venv" not in path.parts \
                and path.name != "test_packaging.py":
            found += [f"{path.relative_to(REPO)}: {match.group(0).strip()}" for match in generic.finditer(path.read_text())]
    assert found == []
