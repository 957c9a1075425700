"""The Python API (``tlcore.train``, ``quantize``, ``predict``, ``list_plugins``), driven by the fake framework."""

import json
import signal
import subprocess
import sys

import pytest

import tests.fake_framework as fake
import tlcore
from tests.conftest import REPO, is_output
from tlcore.errors import ConfigError, PluginError


@pytest.fixture
def config(project, monkeypatch):
    """The project's configuration as a dict, with the current folder at the project (relative paths start there)."""
    monkeypatch.chdir(project.root)
    return dict(project.values)


def test_train_returns_what_the_run_made(config):
    result = tlcore.train(config, plugins=[fake], epochs=3)
    assert isinstance(result, tlcore.RunResult)
    assert [row["epoch"] for row in result.history] == [1, 2, 3], "the keyword argument overrides the dict"
    assert result.metrics == json.loads(result.results_file.read_text())
    assert result.metrics["top_1_accuracy"] == 1.0
    assert result.framework == "fake" and result.plugins["tl_train"] == "tests.fake_framework"
    assert result.output_dir.name == "out" and (result.saved_model_dir / "tl_run.json").is_file()
    assert result.summary is not None and result.summary.is_file()
    assert result.report("confusion_matrix.json").is_file()
    with pytest.raises(KeyError, match="summary.html"):
        result.report("no-such-report.png")


def test_train_from_a_file_path(project):
    result = tlcore.train(project.write(), plugins=[fake])
    assert result.results_file == project.root / "results" / "results.json"


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": "many"}, 'keyword argument: "epochs" must be an integer, not a string ("many")'),
    ({"epoch": 3}, 'keyword argument: unknown key "epoch"; did you mean "epochs"?'),
    ({"framework": "nope"}, 'keyword argument: "framework" is "nope", which is not available'),
])
def test_keyword_arguments_are_checked_like_keys(config, overrides, message):
    with pytest.raises(ConfigError) as error:
        tlcore.train(config, plugins=[fake], **overrides)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_errors_are_the_command_lines(config, project):
    """The same TLError type and one-line message as `tl run` gives for the same configuration."""
    config["batch_size"] = 0
    with pytest.raises(ConfigError) as error:
        tlcore.train(config, plugins=[fake])
    written = project.write(batch_size=0)
    cli = project.run(config=written)
    assert cli.exit_code == 2
    assert str(error.value).split(": ", 1)[1] in cli.output


class Observer:
    """An observer plugin, as a notebook cell would define it."""

    def __init__(self):
        self.epochs = []
        self.ends = 0

    @tlcore.hookspecs.hookimpl
    def tl_on_epoch_end(self, epoch, logs):
        self.epochs.append((epoch, logs["val_acc"]))

    @tlcore.hookspecs.hookimpl
    def tl_on_run_end(self, result):
        self.ends += 1


def test_a_plugin_object_is_used_for_that_call_only(config):
    observer = Observer()
    tlcore.train(config, plugins=[fake, observer])
    assert [epoch for epoch, _ in observer.epochs] == [1, 2] and observer.ends == 1
    second = tlcore.train(config, plugins=[fake])
    assert observer.ends == 1, "the observer of the first call is not registered in the second"
    assert len(second.history) == 2


def test_two_calls_in_one_process_give_the_same_result(config):
    first = tlcore.train(config, plugins=[fake], seed=1)
    second = tlcore.train(config, plugins=[fake], seed=1)
    assert first.history == second.history and first.metrics == second.metrics


def test_a_blocked_plugin_is_not_used(config):
    result = tlcore.train(config, plugins=[fake], block=["metrics.per_class"])
    assert "per_class" not in result.metrics
    with pytest.raises(PluginError, match="no plugin has this name"):
        tlcore.train(config, plugins=[fake], block=["no-such-plugin"])


def test_predict_and_list_plugins(config, project):
    result = tlcore.train(config, plugins=[fake])
    validation = project.root / "dataset" / "validation"
    predictions = tlcore.predict(result.saved_model_dir, validation, top_k=2, plugins=[fake])
    assert len(predictions) == 6
    for prediction in predictions:
        assert prediction.label == prediction.path.split("/")[-2] and len(prediction.predictions) == 2
    one = tlcore.predict(result.output_dir, [validation / "cat" / "cat_0.jpg"], plugins=[fake])
    assert one[0].label == "cat" and len(one[0].predictions) == 3, "top_k beyond the classes gives them all"
    listing = tlcore.list_plugins(plugins=[fake])
    assert {"fake", "keras", "torch"} <= {framework["name"] for framework in listing["frameworks"]}
    assert "fake" not in {framework["name"] for framework in tlcore.list_plugins()["frameworks"]}


def test_an_interrupted_call_keeps_the_earlier_outputs_and_the_signal_handlers(config, project):
    first = tlcore.train(config, plugins=[fake])
    before = {path: path.read_bytes() for path in sorted(project.root.joinpath("out").rglob("*"))
              if path.is_file() and is_output(path)}
    results = first.results_file.read_bytes()
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    class Stop:
        @tlcore.hookspecs.hookimpl
        def tl_on_epoch_end(self, epoch):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tlcore.train(config, plugins=[fake, Stop()], epochs=4)
    after = {path: path.read_bytes() for path in sorted(project.root.joinpath("out").rglob("*"))
             if path.is_file() and is_output(path)}
    assert after == before and first.results_file.read_bytes() == results
    assert not [path for path in project.root.rglob("*") if "tl-partial" in path.name or "tl-old" in path.name]
    assert {number: signal.getsignal(number) for number in handlers} == handlers
    assert len(tlcore.train(config, plugins=[fake]).history) == 2, "the next call runs"


def test_importing_tlcore_and_its_api_loads_no_framework():
    code = ("import sys, tlcore; tlcore.train, tlcore.predict, tlcore.quantize, tlcore.list_plugins; "
            "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch', 'tlplugins', 'keras')])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_list_plugins_finds_the_built_ins_by_name_as_the_command_line_does():
    listing = tlcore.list_plugins()
    names = {plugin["name"] for plugin in listing["plugins"]}
    assert {"datasets.imagenet_folder", "keras.trainer", "metrics.top1"} <= names


def test_quantize_then_predict_with_the_quantized_model(config):
    trained = tlcore.train(config, plugins=[fake])
    result = tlcore.quantize(config, plugins=[fake], quantization_images=6)
    assert isinstance(result, tlcore.QuantizationResult)
    assert result.folder == trained.output_dir / "imx500"
    assert result.metrics["quantized_top_1_accuracy"] == 1.0 and result.metrics["quantization"][
        "calibration_images"] == 6
    assert json.loads(trained.results_file.read_text())["quantized_top_1_accuracy"] == 1.0
    quantized = tlcore.predict(trained.output_dir, config["dataset_validation_dir"], quantized=True, plugins=[fake])
    assert len(quantized) == 6
    assert all(prediction.label == prediction.path.split("/")[-2] for prediction in quantized)


def test_a_plugin_may_be_given_as_a_module_name_a_module_or_a_class(config):
    class Watcher:
        epochs = []

        @tlcore.hookimpl
        def tl_on_epoch_end(self, epoch, logs):
            Watcher.epochs.append(epoch)

    assert tlcore.train(config, plugins=["tests.fake_framework", Watcher]).framework == "fake"
    assert Watcher.epochs == [1, 2], "the class was made into a plugin object"

    class Needy:
        def __init__(self, setting):
            self.setting = setting

    with pytest.raises(PluginError, match=r"plugin class Needy cannot be made without arguments .*pass an instance"):
        tlcore.train(config, plugins=[fake, Needy])
    with pytest.raises(PluginError, match='plugin "no_such_module" cannot be used'):
        tlcore.train(config, plugins=[fake, "no_such_module"])
