"""The orchestrator, driven by tiny pure-Python plugins: order, attribution, and outputs."""

import io
import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from tlcli.main import main
from tlplugins import BUILTIN_PLUGINS
from tests.conftest import CHECKPOINT, is_output, one_line_error
from tlcore.config import load_config
from tlcore.errors import OutputError, PluginError
from tlcore.hookspecs import hookimpl
from tlcore.outputs import OWNED
from tlcore.pluginmanager import make_plugin_manager
from tlcore.report import Reporter
from tlcore.run import run


def manager_with(*plugins, blocked=()):
    manager = make_plugin_manager(BUILTIN_PLUGINS, blocked=blocked, entrypoints=False, extra=["tests.fake_framework"])
    for index, plugin in enumerate(plugins):
        manager.register(plugin, name=f"test-plugin-{index}")
    return manager


def run_with(project, *plugins, **changes):
    """Run in this process with the fake framework and ``plugins``; the configuration's keys are checked against
    the plugins' declarations as ``tl run`` checks them."""
    from tlcore.config import read_selection
    from tlcore.prepare import framework_keys

    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    manager = manager_with(*plugins)
    path = project.write(**changes)
    config = load_config(path, plugin_keys=framework_keys(manager, read_selection(path)[1])[0])
    return run(config, manager, reporter), reporter


def write_plugin(tmp_path, monkeypatch, name, source):
    """A plugin module ``name`` importable for ``tl run -p name``."""
    site = tmp_path.parent / f"{tmp_path.name}-site"
    site.mkdir(exist_ok=True)
    (site / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(site))
    return name


class Recorder:
    """Answers nothing; records every hook call in order."""

    def __init__(self):
        self.calls = []

    @hookimpl(tryfirst=True)
    def tl_on_run_start(self, config):
        self.calls.append("tl_on_run_start")

    @hookimpl(tryfirst=True)
    def tl_load_dataset(self, config):
        self.calls.append("tl_load_dataset")

    @hookimpl(tryfirst=True)
    def tl_load_base_model(self, config):
        self.calls.append("tl_load_base_model")

    @hookimpl(tryfirst=True)
    def tl_remove_top_layer(self, model):
        self.calls.append("tl_remove_top_layer")

    @hookimpl(tryfirst=True)
    def tl_train(self, model, dataset):
        self.calls.append("tl_train")

    @hookimpl
    def tl_on_epoch_start(self, epoch, epochs):
        self.calls.append(f"tl_on_epoch_start {epoch}/{epochs}")

    @hookimpl
    def tl_on_epoch_end(self, epoch, logs):
        self.calls.append(f"tl_on_epoch_end {epoch} val_acc={logs['val_acc']:.2f}")

    @hookimpl(tryfirst=True)
    def tl_save_model(self, path):
        self.calls.append("tl_save_model")

    @hookimpl(tryfirst=True)
    def tl_predict(self, images):
        self.calls.append(f"tl_predict {len(images)}")

    @hookimpl
    def tl_evaluate(self, predictions):
        self.calls.append(f"tl_evaluate {len(predictions)}")

    @hookimpl
    def tl_on_run_end(self, metrics, result):
        self.calls.append(f"tl_on_run_end top1={metrics['top_1_accuracy']:.2f} epochs={len(result.history)}")


def test_hooks_are_called_in_the_documented_order(project):
    recorder = Recorder()
    run_with(project, recorder, epochs=2)
    assert recorder.calls == [
        "tl_on_run_start",
        "tl_load_dataset",
        "tl_load_base_model",
        "tl_remove_top_layer",
        "tl_train",
        "tl_on_epoch_start 1/2",
        "tl_on_epoch_end 1 val_acc=1.00",
        "tl_on_epoch_start 2/2",
        "tl_on_epoch_end 2 val_acc=1.00",
        "tl_save_model",
        "tl_evaluate 6",  # no tl_predict: the trainer scored the validation features it had cached
        "tl_on_run_end top1=1.00 epochs=2",
    ]


def test_run_writes_model_record_and_results(project):
    result, _ = run_with(project)
    saved = project.root / "out" / "saved_model"
    assert json.loads((saved / "model.json").read_text())["base"]["layers"] == ["mean"]
    assert json.loads((saved / "labels.json").read_text()) == {"cat": 0, "dog": 1, "fox": 2}
    preprocessing = json.loads((saved / "preprocessing.json").read_text())
    assert (preprocessing["size"], preprocessing["scale"], preprocessing["offset"]) == (32, 1 / 255, 0.0)
    assert (preprocessing["layout"], preprocessing["channel_order"], preprocessing["name"]) == ("NHWC", "RGB", "unit")
    record = json.loads((saved / "tl_run.json").read_text())
    assert record["framework"] == "fake"
    assert record["plugins"]["tl_train"] == "tests.fake_framework"
    assert record["plugins"]["tl_load_dataset"] == "datasets.imagenet_folder"
    assert [epoch["epoch"] for epoch in record["history"]] == [1, 2]
    assert project.results() == dict(result.metrics)
    assert result.metrics["top_1_accuracy"] == 1.0 and result.metrics["num_images"] == 6
    assert result.metrics["per_class"]["dog"] == {"top_1_accuracy": 1.0, "num_images": 2, "precision": 1.0,
                                                   "recall": 1.0, "f1": 1.0}
    assert not [p for p in (project.root / "out").iterdir() if p.name != "saved_model"], "no leftovers"


def test_the_run_result_says_what_was_made_and_by_whom(project):
    result, _ = run_with(project, epochs=3)
    assert result.framework == "fake"
    assert result.saved_model_dir == project.root / "out" / "saved_model"
    assert result.results_file == project.root / "results" / "results.json"
    assert [epoch["epoch"] for epoch in result.history] == [1, 2, 3]
    assert set(result.history[-1]) == {"epoch", "loss", "acc", "val_loss", "val_acc"}
    assert result.plugins["tl_save_model"] == "tests.fake_framework" and result.seconds > 0


def test_an_installed_plugin_answers_before_the_built_in(project):
    class Dataset:
        @hookimpl
        def tl_load_dataset(self, config, reporter):
            from tlplugins.datasets.imagenet_folder import tl_load_dataset

            dataset = tl_load_dataset(config=config, reporter=reporter)
            return type(dataset)(labels=dataset.labels, training=dataset.training,
                                 validation=dataset.training, labels_file=None)

    result, _ = run_with(project, Dataset())
    assert result.metrics["num_images"] == 12, "the plugin's dataset (validation = training) was used"


def test_a_plugin_that_raises_is_named(project):
    class Broken:
        @hookimpl
        def tl_train(self, model):
            raise ValueError("head too small\nsecond line")

    with pytest.raises(PluginError, match=r'plugin "test-plugin-0" failed in tl_train: ValueError: head too small \.\.\.'):
        run_with(project, Broken())


def test_a_plugin_returning_the_wrong_type_is_named(project):
    class Wrong:
        @hookimpl
        def tl_load_dataset(self):
            return ["cat.jpg"]

    with pytest.raises(PluginError, match='"test-plugin-0" returned list from tl_load_dataset; it must return a tlcore'):
        run_with(project, Wrong())


def test_metrics_must_be_a_json_dict(project):
    class NotDict:
        @hookimpl
        def tl_evaluate(self):
            return 0.9

    class NotJson:
        @hookimpl
        def tl_evaluate(self):
            return {"confusion": {1, 2}}

    with pytest.raises(PluginError, match='"test-plugin-0" returned float from tl_evaluate'):
        run_with(project, NotDict())
    with pytest.raises(PluginError, match='"test-plugin-0" returned metrics that are not JSON-serialisable'):
        run_with(project, NotJson())


def test_metrics_of_several_evaluators_are_merged_and_duplicates_refused(project):
    class Extra:
        @hookimpl
        def tl_evaluate(self, dataset):
            return {"num_classes": len(dataset.labels)}

    class Clash:
        @hookimpl
        def tl_evaluate(self):
            return {"top_1_accuracy": 1.0}

    result, _ = run_with(project, Extra())
    assert result.metrics["num_classes"] == 3 and "top_1_accuracy" in project.results()
    with pytest.raises(PluginError, match='"top_1_accuracy" is reported by both "test-plugin-0" and "metrics.top1"'):
        run_with(project, Clash())


def test_no_answer_says_a_plugin_is_missing(project):
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    manager = make_plugin_manager(BUILTIN_PLUGINS, blocked=["datasets.imagenet_folder", "datasets.listed"],
                                  entrypoints=False, extra=["tests.fake_framework"])
    with pytest.raises(PluginError, match="no plugin implements tl_load_dataset; is a plugin blocked or not installed"):
        run(load_config(project.write()), manager, reporter)


def test_a_missing_evaluator_is_found_before_anything_runs(project):
    class Watcher:
        calls = []

        @hookimpl
        def tl_on_run_start(self):
            self.calls.append("tl_on_run_start")

    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    manager = make_plugin_manager(BUILTIN_PLUGINS, blocked=["metrics.top1", "metrics.per_class", "metrics.top5"],
                                  entrypoints=False,
                                  extra=["tests.fake_framework"])
    manager.register(Watcher())
    with pytest.raises(PluginError, match="no plugin implements tl_evaluate; is a plugin blocked"):
        run(load_config(project.write()), manager, reporter)
    assert Watcher.calls == []


def test_answer_hooks_returning_nothing_say_so(project):
    class Silent:
        @hookimpl
        def tl_load_dataset(self):
            return None

    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    manager = make_plugin_manager(BUILTIN_PLUGINS, blocked=["datasets.imagenet_folder"],
                                  entrypoints=False, extra=["tests.fake_framework"])
    manager.register(Silent())
    with pytest.raises(PluginError, match="no plugin answered tl_load_dataset"):
        run(load_config(project.write()), manager, reporter)


def test_failure_after_training_keeps_previous_outputs(project):
    run_with(project)
    saved = project.root / "out" / "saved_model"
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    results_before = project.results()

    class FailsEvaluating:
        @hookimpl
        def tl_evaluate(self):
            raise RuntimeError("disk on fire")

    with pytest.raises(PluginError, match="disk on fire"):
        run_with(project, FailsEvaluating(), epochs=1)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert project.results() == results_before
    assert sorted(p.name for p in (project.root / "out").iterdir() if is_output(p)) == ["saved_model"], \
        "no partial folders"
    assert (project.root / "out" / CHECKPOINT).is_dir(), "the trained state stays, for tl run --resume"


def test_a_new_run_replaces_its_own_previous_model(project):
    run_with(project, epochs=1)
    run_with(project, epochs=3)
    record = json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
    assert record["configuration"]["epochs"] == 3
    assert sorted(p.name for p in (project.root / "out").iterdir()) == ["saved_model"]


def test_a_saved_model_folder_not_written_by_tl_is_never_replaced(project):
    foreign = project.root / "out" / "saved_model"
    foreign.mkdir(parents=True)
    (foreign / "precious.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists and was not written by tl"):
        run_with(project)
    assert (foreign / "precious.txt").read_text() == "mine"


def test_output_folders_created_by_a_failed_run_are_removed(project):
    class Broken:
        @hookimpl
        def tl_train(self):
            raise RuntimeError("boom")

    with pytest.raises(PluginError):
        run_with(project, Broken(), output_dir="new/deep/out", evaluate_result_dir="new/results")
    assert not (project.root / "new").exists()


def test_unwritable_output_is_reported_before_training(project):
    (project.root / "file.txt").write_text("x")
    recorder = Recorder()
    with pytest.raises(OutputError, match='cannot write to "output_dir"'):
        run_with(project, recorder, output_dir="file.txt/out")
    assert "tl_train" not in recorder.calls


def test_interrupt_exits_130_and_keeps_previous_outputs(project, tmp_path, monkeypatch):
    assert project.run().exit_code == 0
    before = project.files()
    name = write_plugin(tmp_path, monkeypatch, "interrupting_plugin", """
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_on_epoch_end(epoch):
            raise KeyboardInterrupt
    """)
    result = project.run("-p", name)
    assert result.exit_code == 130
    assert "Interrupted" in result.output and "Traceback" not in result.output
    assert project.files() == before


def test_plugin_that_fails_to_import_stops_the_run_with_a_way_out(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "broken_import_plugin", "import does_not_exist\n")
    result = project.run("-p", name)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert f'plugin "{name}" cannot be used (ModuleNotFoundError' in line
    assert f"fix the module, or leave out -p {name}" in line


def test_misspelled_hook_name_is_an_error(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "typo_plugin", """
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_trian(model):
            return model
    """)
    result = project.run("-p", name)
    assert "implements tl_trian, which is not a tl hook; did you mean tl_train?" in one_line_error(result)


def test_blocking_an_unknown_plugin_name_is_an_error(project):
    result = project.run("--block", "keras.trainr")
    assert "--block keras.trainr: no plugin has this name" in one_line_error(result)


def test_run_header_names_the_framework_and_added_and_blocked_plugins(project):
    result = project.run("--block", "metrics.per_class")
    assert result.exit_code == 0
    assert "(framework fake)" in result.output.splitlines()[0]
    assert "Plugins: tests.fake_framework" in result.output
    assert "Blocked: metrics.per_class" in result.output


def test_block_plugins_configuration_key(project):
    project.write(block_plugins=["metrics.per_class"])
    result = CliRunner().invoke(main, ["run", str(project.config_path), "-p", "tests.fake_framework"])
    assert result.exit_code == 0, result.output
    assert "Blocked: metrics.per_class" in result.output and "per_class" not in project.results()
    project.write(block_plugins=["metrics.per_class", "tl-uninstalled-long-ago"])
    result = CliRunner().invoke(main, ["run", str(project.config_path), "-p", "tests.fake_framework"])
    assert result.exit_code == 0, result.output
    assert ('Warning: "block_plugins" in the configuration: tl-uninstalled-long-ago: no plugin has this name '
            "(not installed?); nothing to block") in result.output
    project.write(block_plugins="metrics.per_class")
    result = project.run()
    assert '"block_plugins" must be a list of plugin names' in one_line_error(result)


def test_results_path_that_is_a_folder_is_refused_before_anything_is_replaced(project):
    run_with(project)
    saved = project.root / "out" / "saved_model"
    record = (saved / "tl_run.json").read_bytes()
    (project.root / "results" / "results.json").unlink()
    (project.root / "results" / "results.json").mkdir()
    with pytest.raises(OutputError, match="results.json exists and is not a file"):
        run_with(project, epochs=5)
    assert (saved / "tl_run.json").read_bytes() == record


def test_interrupt_after_the_outputs_are_written_says_they_are_complete(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "interrupt_at_end", """
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_on_run_end():
            raise KeyboardInterrupt
    """)
    result = project.run("-p", name)
    assert result.exit_code == 130
    assert "Interrupted after the outputs were written: saved_model and results.json are complete." in result.output
    assert project.results()["num_images"] == 6


def test_a_plugin_declaring_keys_wrongly_is_named(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "bad_keys", """
        from tlcore.config import ConfigKey
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_config_keys():
            return ConfigKey("threshold", "number", default=0.5)
    """)
    result = project.run("-p", name)
    assert 'plugin "bad_keys" returned ConfigKey from tl_config_keys; it must return a list' in one_line_error(result)
    listing = CliRunner().invoke(main, ["plugins", "list", "-p", name])
    assert listing.exit_code == 0
    assert "FAILED TO LOAD: plugin \"bad_keys\" returned ConfigKey" in listing.output


def test_plugin_path_keys_resolve_from_the_configuration_folder(project, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "path_keys", """
        from tlcore.config import ConfigKey
        from tlcore.hookspecs import hookimpl

        @hookimpl
        def tl_config_keys():
            return [
                ConfigKey("history_dir", "path", default="history", path_kind="output_dir"),
                ConfigKey("notes", "path", default=None, nullable=True, path_kind="file",
                          convert=lambda path, base_dir: path.read_text().strip()),
            ]

        @hookimpl
        def tl_on_run_start(config):
            print("HISTORY", config.options["history_dir"], "NOTES", config.options["notes"])
    """)
    (project.root / "notes.txt").write_text("hello\n")
    project.write(notes="notes.txt")
    result = project.run("-p", name)
    assert f"HISTORY {project.root / 'history'} NOTES hello" in result.output


def test_a_duplicate_plugin_name_can_be_blocked_or_uninstalled(project):
    result = project.run("-p", "keras.trainer")
    assert "keras.trainer" in result.output and "uninstall one of them" in one_line_error(result)


def test_scores_of_the_wrong_shape_are_named(project):
    class OneColumn:
        TL_FRAMEWORK = "fake"

        @hookimpl(tryfirst=True)
        def tl_predict(self, images):
            return [[1.0]] * len(images)

    with pytest.raises(PluginError, match=r'plugin "test-plugin-0" returned scores of shape \(2, 1\) from tl_predict '
                                          r"for 2 images; expected \(2, 3\): one score per output index"):
        run_with(project, OneColumn(), feature_cache="off")


def test_reports_are_published_beside_results_only_when_the_run_succeeds(project):
    class Reports:
        @hookimpl
        def tl_write_reports(self, predictions, history, path):
            (path / "summary.md").write_text(f"{len(predictions)} images, {len(history)} epochs\n")
            (path / "figures").mkdir()
            (path / "figures" / "a.txt").write_text("a")
            return ["summary.md", "figures"]

    result = project.run()
    assert result.exit_code == 0
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    run(load_config(project.write()), manager_with(Reports(), blocked=["reports.summary"]), reporter)
    results = project.root / "results"
    assert (results / "summary.md").read_text() == "6 images, 2 epochs\n"
    assert (results / "figures" / "a.txt").read_text() == "a"
    assert f"Summary: {results / 'summary.md'}" in reporter.stream.getvalue()
    names = {p.name for p in results.iterdir()}
    assert {"figures", "results.json", "summary.md"} <= names, names
    assert not [n for n in names if n.startswith(".") and n != OWNED], "no partial files; only tl's record of its own"

    class Broken:
        @hookimpl
        def tl_evaluate(self):
            raise RuntimeError("late failure")

    class OtherReports:
        @hookimpl
        def tl_write_reports(self, path):
            (path / "summary.md").write_text("new\n")
            return ["summary.md"]

    with pytest.raises(PluginError, match="late failure"):
        run(load_config(project.write()), manager_with(OtherReports(), Broken()), reporter)
    assert (results / "summary.md").read_text() == "6 images, 2 epochs\n", "the previous report is kept"


def test_no_image_goes_through_the_base_twice_when_features_are_cached(project, monkeypatch):
    """Evaluation reuses the validation images' cached features; without the cache, tl_predict scores them."""
    from tests import fake_framework

    seen = []
    original = fake_framework.mean_colour
    monkeypatch.setattr(fake_framework, "mean_colour", lambda images: (seen.append(len(images)), original(images))[1])

    class Predicts:
        calls = 0

        @hookimpl
        def tl_predict(self):
            Predicts.calls += 1

    result, _ = run_with(project, Predicts(), epochs=3, augmentation_views=0)
    assert sum(seen) == 12 + 6 and Predicts.calls == 0, "one pass: 12 training and 6 validation images"
    assert result.metrics["top_1_accuracy"] == 1.0
    seen.clear()
    result, _ = run_with(project, Predicts(), epochs=3)
    assert sum(seen) == 12 * 4 + 6 and Predicts.calls == 0, \
        "4 images per class: each training image and its 3 augmented views once, each validation image once"
    seen.clear()
    result, _ = run_with(project, Predicts(), epochs=3, feature_cache="off")
    assert Predicts.calls == 3 and sum(seen) > 18 and result.metrics["top_1_accuracy"] == 1.0


def test_reports_of_an_earlier_run_that_this_run_does_not_write_are_removed(project):
    class Extra:
        @hookimpl
        def tl_write_reports(self, path):
            (path / "extra.txt").write_text("from the first run")
            return ["extra.txt"]

    results = project.root / "results"
    run_with(project, Extra())
    (results / "notes.txt").write_text("the user's own")
    assert (results / "extra.txt").exists()
    run_with(project)
    assert not (results / "extra.txt").exists(), "tl's own report of the earlier run, not written again"
    assert (results / "notes.txt").read_text() == "the user's own"
    assert (results / "summary.html").exists()


def test_a_run_decodes_each_image_once_when_they_were_decoded_while_the_framework_started(project, monkeypatch):
    import tlcore.loader as loader

    class SlowFramework:
        """Holds the run at the start until decoding ahead is done, as a slow framework import would."""

        @hookimpl
        def tl_check_model(self, model, config, reporter):
            loader._AHEAD.get().join()

    decoded = []
    original = loader.decode
    monkeypatch.setattr(loader, "decode", lambda path, size: decoded.append(path) or original(path, size))
    result, _ = run_with(project, SlowFramework(), seed=1)
    assert len(decoded) == len(set(decoded)) == 18, "each of the 12 training and 6 validation images once"
    decoded.clear()
    monkeypatch.setattr(loader, "AHEAD_BYTES", 0)
    plain, _ = run_with(project, seed=1)
    assert len(decoded) == 18
    assert dict(plain.metrics) == dict(result.metrics) and plain.history == result.history


def test_observers_that_started_hear_when_another_observers_start_fails(project):
    heard = []

    class Started:
        @hookimpl
        def tl_on_run_start(self, config):
            heard.append("start")

        @hookimpl
        def tl_on_run_failed(self, config, error):
            heard.append(f"failed: {error}")

    class Broken:
        @hookimpl(trylast=True)
        def tl_on_run_start(self, config):
            raise RuntimeError("no dashboard")

    with pytest.raises(PluginError, match="no dashboard"):
        run_with(project, Started(), Broken())
    assert heard[0] == "start" and heard[1].startswith("failed: ") and "no dashboard" in heard[1]
    assert not (project.root / "out").exists(), "nothing was written"


class Exits:
    """A plugin that calls sys.exit in one hook."""

    def __init__(self, hook, code):
        self.hook, self.code = hook, code

    @hookimpl
    def tl_on_epoch_end(self):
        if self.hook == "tl_on_epoch_end":
            sys.exit(self.code)

    @hookimpl
    def tl_write_reports(self):
        if self.hook == "tl_write_reports":
            sys.exit(self.code)

    @hookimpl
    def tl_on_run_end(self):
        if self.hook == "tl_on_run_end":
            sys.exit(self.code)


@pytest.mark.parametrize("hook, code", [("tl_on_epoch_end", 0), ("tl_write_reports", 0), ("tl_on_run_end", 3)])
def test_sys_exit_in_a_plugin_is_a_plugin_error_naming_it_and_the_hook(project, hook, code):
    """sys.exit(0) must not pass for success, nor sys.exit(3) end tl without a word: exit 1, one line."""
    with pytest.raises(PluginError, match=rf'plugin ".*" called sys.exit\({code}\) in {hook}; a plugin stops a run '
                                          "by raising an exception"):
        run_with(project, Exits(hook, code))
    published = (project.root / "out" / "saved_model").exists()
    assert published == (hook == "tl_on_run_end"), "published only when the exit came after publishing"
