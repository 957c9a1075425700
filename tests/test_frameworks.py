"""Frameworks are selected, never mixed: scoping, missing steps, keys, installation, failures heard by observers."""

import io
import textwrap

import pytest

from tlplugins import BUILTIN_PLUGINS
from tests.conftest import one_line_error
from tests.test_run import run_with, write_plugin
from tlcore.config import load_config
from tlcore.errors import ConfigError, PluginError
from tlcore.frameworks import Framework
from tlcore.hookspecs import hookimpl
from tlcore.pluginmanager import make_plugin_manager
from tlcore.prepare import prepare
from tlcore.report import Reporter
from tlcore.run import run


def test_an_unknown_framework_is_one_line_listing_the_available_ones(project):
    result = project.run(config=project.write(framework="jax"))
    assert result.exit_code == 2
    assert one_line_error(result) == ('Error: configuration.json: "framework" is "jax", which is not available; '
                                      "available: fake, keras, torch")
    result = project.run(config=project.write(framework="kears"))
    assert 'did you mean "keras"? available: fake, keras, torch' in one_line_error(result)


def test_another_frameworks_plugin_is_never_asked(project):
    """A Keras-only plugin that would break a fake run is not called at all when the fake framework is selected."""

    class KerasOnly:
        TL_FRAMEWORK = "keras"
        calls = []

        @hookimpl(tryfirst=True)
        def tl_train(self):
            self.calls.append("tl_train")
            raise AssertionError("asked for another framework")

        @hookimpl
        def tl_evaluate(self):
            self.calls.append("tl_evaluate")
            return {"keras_only_metric": 1}

    result, _ = run_with(project, KerasOnly())
    assert KerasOnly.calls == [] and "keras_only_metric" not in result.metrics
    assert result.plugins["tl_train"] == "tests.fake_framework"


def test_a_plugin_serving_several_frameworks_is_asked_for_each(project):
    class Both:
        TL_FRAMEWORK = ("keras", "fake")

        @hookimpl
        def tl_evaluate(self):
            return {"both": True}

    result, _ = run_with(project, Both())
    assert result.metrics["both"] is True


def framework_pack(*steps, name="half", silent=(), **options):
    """A plugin declaring framework ``name`` and implementing only ``steps`` (each returning something),
    and ``silent`` steps that answer nothing."""

    class Pack:
        TL_FRAMEWORK = name

        @hookimpl
        def tl_frameworks(self):
            return [Framework(name, summary="half a pack", **options)]

    for step in steps:
        setattr(Pack, step, hookimpl(lambda self: {"from": "half"}))
    for step in silent:
        setattr(Pack, step, hookimpl(lambda self: None))
    return Pack()


def test_a_framework_lacking_a_step_is_refused_at_start_naming_the_framework_and_the_step(project):
    """A pack without tl_train never falls through to the Keras trainer: it is stopped before anything runs."""

    class Watcher:
        calls = []

        @hookimpl
        def tl_on_run_start(self):
            self.calls.append("started")

    pack = framework_pack("tl_load_base_model", "tl_remove_top_layer", "tl_save_model", "tl_predict")
    with pytest.raises(PluginError) as error:
        run_with(project, pack, Watcher(), framework="half")
    assert str(error.value) == ('no plugin implements tl_train (framework "half" cannot train); '
                                "is a plugin blocked or not installed?")
    assert Watcher.calls == []


def test_a_step_no_plugin_answers_names_the_framework(project):
    pack = framework_pack("tl_load_base_model", "tl_remove_top_layer", "tl_train", "tl_predict",
                          silent=("tl_save_model",))
    with pytest.raises(PluginError, match=r'no plugin answered tl_save_model \(framework "half" cannot save\)'):
        run_with(project, pack, framework="half")


def test_a_key_of_another_frameworks_plugin_is_refused_with_its_framework(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "keras_key_plugin", """
        from tlcore.config import ConfigKey
        from tlcore.hookspecs import hookimpl

        TL_FRAMEWORK = "keras"

        @hookimpl
        def tl_config_keys():
            return [ConfigKey("cut_deeper", "integer", default=0)]
    """)
    result = project.run("-p", name, config=project.write(cut_deeper=2))
    assert one_line_error(result) == ('Error: configuration.json: "cut_deeper" is a key of framework "keras", but '
                                      '"framework" is "fake"; remove the key or change "framework"')
    prepared = prepare(project.write(cut_deeper=2, framework="keras"), BUILTIN_PLUGINS, extra=[name])
    assert prepared.config.options["cut_deeper"] == 2 and prepared.framework.name == "keras", "fine for its framework"


def test_a_core_key_the_framework_does_not_honour_is_refused(project):
    result = project.run(config=project.write(dropout=0.1))
    assert one_line_error(result) == ('Error: configuration.json: "dropout" does not apply to framework '
                                      '"fake"; remove it or choose another framework')
    result = project.run(config=project.write(source_keras_model=""))
    assert result.exit_code == 0, "an empty source_keras_model (the SDK's default) says nothing"


def test_a_framework_that_is_not_installed_says_what_to_install(project):
    pack = framework_pack(requires=("tl_surely_missing_module",), install="pip install -e '.[surely]'")
    with pytest.raises(ConfigError, match=r'framework "half" needs tl_surely_missing_module, which is not installed; '
                                          r"pip install -e '.\[surely\]'"):
        run_with(project, pack, framework="half")


def test_two_plugins_declaring_one_framework_is_an_error(project):
    class Copy:
        @hookimpl
        def tl_frameworks(self):
            return [Framework("fake")]

    with pytest.raises(PluginError, match='framework "fake" is declared by both'):
        run_with(project, Copy())


def test_a_bad_framework_declaration_is_named(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "bad_framework_attribute", """
        TL_FRAMEWORK = 3
    """)
    result = project.run("-p", name)
    assert f'plugin "{name}" cannot be used (TL_FRAMEWORK must be a framework name' in one_line_error(result)
    name = write_plugin(tmp_path, monkeypatch, "bad_framework_hook", """
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_frameworks():
            return "torch"
    """)
    result = project.run("-p", name)
    assert f'plugin "{name}" returned str from tl_frameworks; it must return a list' in one_line_error(result)


class Observer:
    def __init__(self, fail=False):
        self.failures = []
        self.fail = fail

    @hookimpl
    def tl_on_run_failed(self, config, error):
        self.failures.append((config.framework, type(error).__name__, str(error)))
        if self.fail:
            raise RuntimeError("cleanup broke too")


def test_observers_hear_a_failed_run_and_their_own_errors_do_not_hide_it(project):
    class Broken:
        @hookimpl
        def tl_save_model(self):
            raise OSError("disk full")

    observer, clumsy = Observer(), Observer(fail=True)
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    manager = make_plugin_manager(BUILTIN_PLUGINS, entrypoints=False, extra=["tests.fake_framework"])
    for index, plugin in enumerate((Broken(), observer, clumsy)):
        manager.register(plugin, name=f"p{index}")
    with pytest.raises(PluginError, match="disk full"):
        run(load_config(project.write()), manager, reporter)
    assert observer.failures == [("fake", "PluginError", 'plugin "p0" failed in tl_save_model: OSError: disk full')]
    assert 'plugin "p2" failed in tl_on_run_failed: RuntimeError: cleanup broke too' in reporter.err.getvalue()


def test_observers_hear_an_interrupted_run(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "interrupt_and_observe", """
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_on_epoch_end(epoch):
            raise KeyboardInterrupt

        @hookimpl
        def tl_on_run_failed(error):
            print("HEARD", type(error).__name__)
    """)
    result = project.run("-p", name)
    assert result.exit_code == 130
    assert "HEARD KeyboardInterrupt" in result.output


def test_a_saved_model_loads_back_and_predicts_like_the_run(project):
    """tl_load_model gives back what tl_predict scored during the run (here: the fake framework's centroids)."""
    import numpy as np

    from tests import fake_framework

    result, _ = run_with(project)
    model = fake_framework.tl_load_model(path=result.saved_model_dir)
    red = np.full((1, 32, 32, 3), (200 / 255, 40 / 255, 40 / 255), dtype=np.float32)
    scores = fake_framework.tl_predict(model=model, images=red)
    assert scores.shape == (1, 3) and scores.argmax() == 0 and abs(scores.sum() - 1) < 1e-6


def test_the_documented_minimal_framework_pack_is_the_one_tests_run():
    """docs/writing-a-plugin.md shows tests/fake_framework.py as the minimal framework pack, word for word."""
    import re

    from tests.conftest import REPO

    page = (REPO / "docs" / "writing-a-plugin.md").read_text()
    section = page.split("## Writing a framework pack", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    source = (REPO / "tests" / "fake_framework.py").read_text()
    assert textwrap.dedent(blocks[0]).strip() == source.strip()


def test_a_keras_model_key_with_the_torch_framework_points_to_the_torch_key(project):
    (project.root / "model.h5").write_bytes(b"\x89HDF")
    with pytest.raises(ConfigError, match='"source_keras_model" does not apply to framework "torch"; it names a Keras '
                                          'model; give a PyTorch model as "source_torch_model"'):
        prepare(project.write(framework="torch", source_keras_model="model.h5"), BUILTIN_PLUGINS)
    with pytest.raises(ConfigError, match='"source_torch_model" is a key of framework "torch", but "framework" is '
                                          '"keras"'):
        prepare(project.write(framework="keras", source_torch_model="model.h5"), BUILTIN_PLUGINS)


def test_a_slow_framework_start_up_shows_an_activity_line_and_a_second_start_is_silent(tmp_path, monkeypatch):
    (tmp_path / "tl_slow_engine.py").write_text("import time\ntime.sleep(0.5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("tlcore.frameworks.START_DELAY", 0.1)
    slow = Framework(name="slow", requires=("tl_slow_engine",))
    stream = io.StringIO()
    slow.start(Reporter(stream=stream, isatty=False, interval=0.1))
    lines = stream.getvalue().splitlines()
    assert "Starting slow ..." in lines[0], "a line while it imports"
    assert lines[-1].startswith("Starting slow: done in 0.")
    again = io.StringIO()
    slow.start(Reporter(stream=again, isatty=False, interval=0.1))
    assert again.getvalue() == "", "imported already: nothing to wait for, nothing said"
