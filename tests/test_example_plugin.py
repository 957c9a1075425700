"""The example plugin package, really pip-installed, used, and removed.

It is installed into a folder of its own that the runs put on their path (``pip install --target``), not
into the test environment: tests running at the same time in other processes must not see it.
"""

import json
import shutil
import subprocess
import sys

import pytest

from tests.builders import colour_project
from tests.conftest import REPO, one_line_error, run_tl

pytestmark = pytest.mark.tensorflow
EXAMPLE = REPO / "examples" / "tl-cut-at-layer"
SITE: dict = {}
"""``{"path": folder}`` while the example is installed there."""


def tl(*args):
    site = SITE.get("path")
    return run_tl(*args, env={"PYTHONPATH": f"{site}:{REPO}"} if site else None)


def pip(*args):
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def uninstall():
    """Remove the example: its folder goes, and with it the distribution (metadata and entry points)."""
    site = SITE.pop("path", None)
    if site is not None:
        shutil.rmtree(site)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Install a copy of the example (local path, no network, no build isolation); remove it afterwards."""
    source = tmp_path_factory.mktemp("example") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source)
    site = tmp_path_factory.mktemp("site")
    pip("install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation", "--target", str(site), str(source))
    assert list(site.glob("tl_cut_at_layer-*.dist-info")), "installed as a distribution, with its entry point"
    SITE["path"] = site
    try:
        yield
    finally:
        uninstall()


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    return tmp_path_factory.mktemp("project")


def configure(root, **extra):
    return colour_project(root, **extra)


def test_installed_plugin_is_listed_first_with_its_distribution_and_key(installed):
    listing = json.loads(tl("plugins", "list", "--json").stdout)
    record = next(r for r in listing["plugins"] if r["name"] == "cut-at-layer")
    assert (record["distribution"], record["version"], record["builtin"]) == ("tl-cut-at-layer", "0.1.0", False)
    assert record["hooks"] == ["tl_config_keys", "tl_remove_top_layer"]
    assert record["frameworks"] == ["keras"]
    assert [key["name"] for key in record["config_keys"]] == ["cut_at_layer"]
    assert listing["call_order"]["tl_remove_top_layer [keras]"] == ["cut-at-layer", "top_removal.classifier_head"]
    keras = next(framework for framework in listing["frameworks"] if framework["name"] == "keras")
    assert "cut-at-layer" in keras["plugins"]


def test_tl_run_uses_the_installed_plugin_with_its_configuration_key(installed, tiny_project):
    result = tl("run", configure(tiny_project, cut_at_layer="block_13_expand_relu"))
    assert result.returncode == 0, result.stderr
    assert 'cut-at-layer: cut "mobilenetv2_0.35_32" at layer "block_13_expand_relu"' in result.stdout
    record = json.loads((tiny_project / "out" / "saved_model" / "tl_run.json").read_text())
    assert record["plugins"]["tl_remove_top_layer"] == "cut-at-layer"
    assert record["configuration"]["cut_at_layer"] == "block_13_expand_relu"


def test_plugin_errors_are_one_line_and_helpful(installed, tiny_project):
    result = tl("run", configure(tiny_project, cut_at_layer="block_13_expand_rlu"))
    assert result.returncode == 1
    assert 'has no layer "block_13_expand_rlu" ("cut_at_layer"); did you mean "block_13_expand_relu"?' in one_line_error(result)


def test_blocking_brings_the_built_in_back_for_one_run(installed, tiny_project):
    config = configure(tiny_project)
    result = tl("run", "--block", "cut-at-layer", config)
    assert result.returncode == 0, result.stderr
    assert "Top layers: none to remove" in result.stdout and "cut-at-layer:" not in result.stdout

    config.write_text(json.dumps({**json.loads(config.read_text()), "block_plugins": ["cut-at-layer"]}))
    result = tl("run", config)
    assert result.returncode == 0, result.stderr
    assert "cut-at-layer:" not in result.stdout


def test_after_uninstall_the_built_in_answers_again(installed, tiny_project):
    """Last in this module: uninstalls the example (the fixture's own uninstall then does nothing)."""
    uninstall()
    listing = json.loads(tl("plugins", "list", "--json").stdout)
    assert listing["call_order"]["tl_remove_top_layer [keras]"] == ["top_removal.classifier_head"]
    result = tl("run", configure(tiny_project, cut_at_layer="block_13_expand_relu"))
    assert result.returncode == 2
    assert 'unknown key "cut_at_layer"' in one_line_error(result)
