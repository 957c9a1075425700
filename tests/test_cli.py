"""The command line: help, version, plugin listing, entry points, start-up cost."""

import json
import os
import subprocess
import sys
import textwrap

from click.testing import CliRunner

from tlcli.main import main
from tests.conftest import REPO, one_line_error, run_tl
from tlcore import __version__


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "run" in result.output and "plugins" in result.output


def test_run_help_explains_outputs():
    result = invoke("run", "--help")
    assert result.exit_code == 0
    assert "saved_model" in result.output and "results.json" in result.output and "--block" in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"tl, version {__version__}"


def test_plugins_list_shows_every_built_in_its_framework_and_its_hooks():
    result = invoke("plugins", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    trainer = next(line for line in lines if line.startswith("keras.trainer "))
    assert trainer.split()[1:4] == ["built-in", "keras", "tl_train"]
    top1 = next(line for line in lines if line.startswith("metrics.top1 "))
    assert top1.split()[1:4] == ["built-in", "any", "tl_evaluate"], "metrics serve any framework"
    for name in ("datasets.imagenet_folder", "keras.base_model", "top_removal.classifier_head",
                 "keras.saved_model", "keras.framework", "metrics.per_class"):
        assert any(line.startswith(name + " ") for line in lines), name
    assert "tl_remove_top_layer [keras]: top_removal.classifier_head" in result.output


def test_plugins_list_shows_the_frameworks_and_their_steps():
    result = invoke("plugins", "list", "-p", "tests.fake_framework")
    assert result.exit_code == 0, result.output
    frameworks = result.output.split('Frameworks (configuration key "framework"):', 1)[1]
    assert "  keras (default): TensorFlow 2.15 tf.keras" in frameworks
    assert "  fake: nearest mean colour" in frameworks
    assert ("    steps: load_base_model, remove_top_layer, train, save_model, predict, load_model"
            in frameworks.split("  fake:")[1])
    assert "tl_train [fake]: tests.fake_framework" in result.output
    assert "tl_train [keras]: keras.trainer" in result.output
    assert "tl_train [torch]: torch.trainer" in result.output
    assert "  torch: PyTorch + torchvision" in frameworks


def test_plugins_list_json_and_hook_filter():
    records = json.loads(invoke("plugins", "list", "--json", "-p", "tests.fake_framework").output)
    by_name = {record["name"]: record for record in records["plugins"]}
    assert by_name["metrics.top1"]["hooks"] == ["tl_evaluate"]
    assert by_name["metrics.top1"]["builtin"] is True and by_name["metrics.top1"]["frameworks"] is None
    assert by_name["keras.trainer"]["frameworks"] == ["keras"]
    assert records["call_order"]["tl_train [keras]"] == ["keras.trainer"]
    assert records["call_order"]["tl_train [fake]"] == ["tests.fake_framework"]
    frameworks = {record["name"]: record for record in records["frameworks"]}
    keras = frameworks["keras"]
    assert keras["default"] is True and keras["layout"] == "NHWC" and keras["default_preprocessing"] == "mobilenet_v2"
    assert keras["steps"]["tl_remove_top_layer"] == ["top_removal.classifier_head"]
    assert "keras.trainer" in keras["plugins"] and "metrics.top1" not in keras["plugins"]
    assert frameworks["fake"]["declared_by"] == "tests.fake_framework"
    assert frameworks["fake"]["missing_steps"] == ["tl_export_tflite", "tl_devices", "tl_cluster"]

    filtered = json.loads(invoke("plugins", "list", "--json", "--hook", "tl_train", "-p", "tests.fake_framework").output)
    assert [record["name"] for record in filtered["plugins"]] == ["tests.fake_framework", "keras.trainer",
                                                                  "torch.trainer"]


def test_plugins_list_unknown_hook():
    result = invoke("plugins", "list", "--hook", "tl_trian")
    assert result.exit_code == 2
    assert "'tl_trian' is not a tl hook" in result.output


def make_distribution(site, dist, module, source):
    """An installed distribution in ``site`` whose entry point of group ``tl`` is ``module``."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[tl]\n{dist} = {module}\n")


def test_entry_point_plugins_are_discovered_and_broken_ones_listed(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "tl-hello", "tl_hello", """
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_on_run_start(config):
            print("hello")
    """)
    make_distribution(site, "tl-broken", "tl_broken", "raise ImportError('needs libfoo')\n")
    env = {"PYTHONPATH": f"{site}:{REPO}", "TL_DISABLE_PLUGINS": ""}
    result = run_tl("plugins", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    by_name = {record["name"]: record for record in json.loads(result.stdout)["plugins"]}
    assert by_name["tl-hello"]["distribution"] == "tl-hello" and by_name["tl-hello"]["version"] == "1.2"
    assert by_name["tl-hello"]["hooks"] == ["tl_on_run_start"] and by_name["tl-hello"]["builtin"] is False
    assert by_name["tl-broken"]["error"] == "ImportError: needs libfoo"

    table = run_tl("plugins", "list", env=env).stdout
    assert "tl-broken" in table and "FAILED TO LOAD: ImportError: needs libfoo" in table

    rescued = json.loads(run_tl("plugins", "list", "--json", env={**env, "TL_DISABLE_PLUGINS": "1"}).stdout)
    assert all(record["builtin"] for record in rescued["plugins"])


def test_cli_imports_no_tensorflow_to_list_plugins_or_report_a_config_error(tmp_path):
    probe = (
        "import sys, runpy; sys.argv = ['tl'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('tlcli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('TF' if 'tensorflow' in sys.modules else 'NO-TF')\n"
    )
    script = tmp_path / "probe.py"
    script.write_text(probe)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["plugins", "list"], ["run", str(tmp_path / "missing.json")], ["--help"]):
        out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env).stdout
        assert out.strip().endswith("NO-TF"), (args, out)


def test_user_errors_print_one_line_and_no_traceback_in_a_real_process(tmp_path):
    (tmp_path / "configuration.json").write_text("{oops")
    result = run_tl("run", tmp_path / "configuration.json")
    assert result.returncode == 2
    assert "not valid JSON" in one_line_error(result)
    assert result.stdout == ""


def test_a_bug_in_tl_is_one_line_and_debug_shows_the_traceback(project, monkeypatch):
    import tlcore.api

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(tlcore.api, "run", broken)  # the run the command calls through the Python API
    result = project.run()
    assert result.exit_code == 1
    assert "unexpected RuntimeError: boom; run again with --debug" in one_line_error(result)
    debugged = project.run("--debug")
    assert isinstance(debugged.exception, RuntimeError)


def test_plugins_list_says_when_installed_plugins_are_disabled(monkeypatch):
    monkeypatch.setenv("TL_DISABLE_PLUGINS", "1")
    result = invoke("plugins", "list")
    assert "Installed plugins are disabled (TL_DISABLE_PLUGINS is set)" in result.output
    assert json.loads(invoke("plugins", "list", "--json").output)["installed_plugins_disabled"] is True


def test_dash_p_finds_a_module_in_the_current_folder(project, tmp_path, monkeypatch):
    folder = tmp_path / "my-plugin"
    folder.mkdir()
    (folder / "tl_hello_here.py").write_text(textwrap.dedent("""
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_on_run_start():
            print("HELLO FROM THE CURRENT FOLDER")
    """))
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(folder))])
    result = project.run("-p", "tl_hello_here")
    assert result.exit_code == 0, result.output
    assert "HELLO FROM THE CURRENT FOLDER" in result.output


def test_run_without_an_argument_uses_the_configuration_in_the_current_folder(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write()
    result = invoke("run", "-p", "tests.fake_framework")
    assert result.exit_code == 0, result.output
    assert f"tl {__version__}: {project.config_path} (framework fake)" in result.output
    project.config_path.unlink()
    result = invoke("run")
    assert result.exit_code == 2
    assert one_line_error(result) == (f"Error: no configuration.json in {project.root}; give the path of your "
                                      "configuration, e.g. tl run path/to/configuration.json")
