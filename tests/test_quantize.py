"""Quantizing for the IMX500, driven by the fake framework: the flow, its outputs, its checks and its errors."""

import io
import json
import os
import stat

import pytest
from click.testing import CliRunner

from tlcli.main import main
from tests.conftest import one_line_error
from tests.test_frameworks import framework_pack
from tests.test_run import manager_with, write_plugin
from tlcore.config import load_config
from tlcore.errors import ModelError, PluginError
from tlcore.quantization import Conversion, calibration_indices
from tlcore.report import Reporter


def quantize_cli(project, *args):
    return CliRunner().invoke(main, ["quantize", str(project.config_path), "-p", "tests.fake_framework", *args])


@pytest.fixture
def trained(project):
    """A project whose model `tl run` trained (fake framework)."""
    assert project.run().exit_code == 0
    return project


def test_quantize_publishes_the_package_and_adds_the_quantized_figures(trained):
    result = quantize_cli(trained)
    assert result.exit_code == 0, result.output
    assert "Quantizing for the IMX500: post-training quantization, calibrated on 12 training images" \
        in result.output
    assert "Top-1 accuracy: float 1.0000, quantized 1.0000 (+0.0000)" in result.output
    assert "Warning: not converted for the IMX500: no converter plugin" in result.output
    folder = trained.root / "out" / "imx500"
    assert sorted(p.name for p in folder.iterdir()) == [
        "labels.json", "labels.txt", "model_quantized.json", "preprocessing.json", "quantization.json"]
    assert (folder / "labels.txt").read_text().splitlines() == ["cat", "dog", "fox"]
    device = json.loads((folder / "preprocessing.json").read_text())
    assert (device["mean"], device["std"], device["size"], device["layout"]) == ([0, 0, 0], [1, 1, 1], 32, "NHWC")
    assert device["normalisation_inside_model"] == {"mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0]}
    results = trained.results()
    assert results["top_1_accuracy"] == results["quantized_top_1_accuracy"] == 1.0
    assert results["quantized_per_class"]["fox"] == {"top_1_accuracy": 1.0, "num_images": 2, "precision": 1.0,
                                                     "recall": 1.0, "f1": 1.0}
    assert results["quantization"]["calibration_images"] == 12 and results["quantization"]["converted"] is False
    record = json.loads((folder / "quantization.json").read_text())
    assert record["framework"] == "fake" and record["plugins"]["tl_quantize"] == "tests.fake_framework"
    assert sorted(p.name for p in (trained.root / "out").iterdir()) == ["imx500", "saved_model"], "no leftovers"


def test_the_quantized_model_is_evaluated_on_raw_pixels(trained, tmp_path, monkeypatch):
    """What the device gets, 0-255 pixels: the fake's quantized model fails on normalised input."""
    name = write_plugin(tmp_path, monkeypatch, "input_spy", """
        from tlcore.hookspecs import hookimpl

        TL_FRAMEWORK = "fake"

        @hookimpl(tryfirst=True)
        def tl_predict(model, images):
            if model.get("quantized"):
                print("QUANTIZED INPUT RANGE", float(images.min()), float(images.max()))
    """)
    result = quantize_cli(trained, "-p", name)
    assert result.exit_code == 0, result.output
    low, high = map(float, result.output.split("QUANTIZED INPUT RANGE ")[1].split()[:2])
    assert low >= 0 and 100 < high <= 255


def test_without_a_trained_model_quantize_says_to_train_first(project):
    project.write()
    result = quantize_cli(project)
    assert result.exit_code == 2
    assert one_line_error(result) == (f"Error: no trained model in {project.root / 'out' / 'saved_model'}; train it "
                                      f"first with `tl run {project.config_path}`")


def test_a_configuration_changed_since_training_is_refused_but_quantization_keys_may_change(trained):
    before = trained.files()
    trained.write(input_tensor_size=48)
    result = quantize_cli(trained)
    assert result.exit_code == 2
    assert one_line_error(result) == ('Error: configuration.json: "input_tensor_size" changed since the model in '
                                      f'{trained.root / "out" / "saved_model"} was trained (32 then, 48 now); train '
                                      "again with `tl run`, or set it back")
    assert trained.files() == before
    trained.write(quantization_images=5, quantization_max_drop=0.5, quantization_method="gptq")
    result = quantize_cli(trained)
    assert result.exit_code == 0, result.output
    assert trained.results()["quantization"]["calibration_images"] == 5


def test_tl_run_with_quantize_true_quantizes_after_training(project):
    result = project.run(config=project.write(quantize=True))
    assert result.exit_code == 0, result.output
    assert result.output.index("Saved model:") < result.output.index("Quantizing for the IMX500")
    assert (project.root / "out" / "imx500" / "model_quantized.json").is_file()
    assert project.results()["quantized_top_1_accuracy"] == 1.0


def test_a_framework_that_cannot_quantize_is_refused_before_training(project):
    pack = framework_pack("tl_load_base_model", "tl_remove_top_layer", "tl_train", "tl_save_model", "tl_predict")
    manager = manager_with(pack)
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    with pytest.raises(PluginError, match=r'no plugin implements tl_load_model \(framework "half" cannot load a saved '
                                          r"model\)"):
        from tlcore.run import run

        run(load_config(project.write(framework="half", quantize=True)), manager, reporter)
    assert "Epoch" not in reporter.stream.getvalue()


def test_calibration_takes_training_images_spread_over_the_classes():
    from tlcore.dataset import Split

    split = Split("training", "root", tuple((f"{label}_{i}.jpg", label) for label in (0, 1, 2) for i in range(10)))
    chosen = calibration_indices(split, 6, seed=1)
    assert sorted(split.samples[i][1] for i in chosen) == [0, 0, 1, 1, 2, 2]
    assert chosen == calibration_indices(split, 6, seed=1) != calibration_indices(split, 6, seed=2)
    assert calibration_indices(split, 100, seed=1) == list(range(30)), "all of them when there are fewer"


def test_a_large_accuracy_drop_is_warned_about(trained, tmp_path, monkeypatch):
    name = write_plugin(tmp_path, monkeypatch, "bad_quantizer", """
        from tlcore.hookspecs import hookimpl

        TL_FRAMEWORK = "fake"

        @hookimpl(tryfirst=True)
        def tl_quantize(model, calibration):
            for _ in calibration():
                pass
            return {**model, "centroids": [[0, 0, 0], [0, 0, 1], [0, 0, 2]], "quantized": True}
    """)
    result = quantize_cli(trained, "-p", name)
    assert result.exit_code == 0, result.output
    assert "Warning: quantization cost 0.6667 of Top-1 accuracy, more than quantization_max_drop (0.02)" in result.output
    assert trained.results()["quantization_top_1_drop"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("hook", ["tl_export_quantized", "tl_convert"])
def test_a_failure_or_interrupt_while_quantizing_leaves_earlier_outputs_untouched(trained, tmp_path, monkeypatch, hook):
    assert quantize_cli(trained).exit_code == 0
    before = {path: path.read_bytes() for path in (trained.root / "out").rglob("*") if path.is_file()}
    results = trained.results()
    for error, code in (("KeyboardInterrupt", 130), ("RuntimeError('broken')", 1)):
        name = write_plugin(tmp_path, monkeypatch, f"fails_{hook}_{code}", f"""
            from tlcore.hookspecs import hookimpl

            TL_FRAMEWORK = "fake"

            @hookimpl(tryfirst=True)
            def {hook}():
                raise {error}
        """)
        result = quantize_cli(trained, "-p", name)
        assert result.exit_code == code, result.output
        assert {path: path.read_bytes() for path in (trained.root / "out").rglob("*") if path.is_file()} == before
        assert trained.results() == results


def test_the_validation_images_changed_since_training_so_the_float_model_is_evaluated_again(trained):
    (trained.root / "dataset" / "validation" / "cat" / "cat_0.jpg").unlink()
    result = quantize_cli(trained)
    assert result.exit_code == 0, result.output
    assert "The validation images changed since training: evaluating the float model again" in result.output
    assert trained.results()["num_images"] == trained.results()["quantized_num_images"] == 5


# --- plugins/imx500/converter.py, with stand-ins for Sony's converter and for Java --------------------


def fake_converter(folder, script):
    """An executable ``imxconv-tf`` in ``folder`` running ``script`` (bash) with the converter's arguments."""
    path = folder / "imxconv-tf"
    path.write_text("#!/bin/bash\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


MEMORY_REPORT = {"Memory Report": {"Memory Usage": "3.89MB", "Total Memory Available On Chip": "8.00MB",
                                   "Memory Utilization": "49%", "Fit In Chip": True}}


def convert(tmp_path, monkeypatch, script, java=17, **config):
    from types import SimpleNamespace

    from tlplugins.imx500 import converter

    monkeypatch.setattr(converter, "find_converter", lambda name: fake_converter(tmp_path, script) if script else None)
    monkeypatch.setattr(converter, "java_version", lambda: java)
    package = tmp_path / "package"
    package.mkdir(exist_ok=True)
    settings = SimpleNamespace(framework="keras", options={"imx500_input_persistency": True, **config})
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    model = tmp_path / "model_quantized.keras"
    model.write_bytes(b"model")
    return converter.tl_convert(model_file=model, path=package, config=settings, reporter=reporter), package, reporter


def successful_script(report=MEMORY_REPORT, code=0):
    return f"""
out="$4"; mkdir -p "$out"
echo '{{"log.level": "INFO", "message": "Running version 3.18.2"}}'
echo '{{"log.level": "INFO", "message": "CODE: [START] Starting SDSPconv"}}'
echo "args: $*" > "$out/../../args.txt"
echo zip > "$out/packerOut.zip"; echo xml > "$out/dnnParams.xml"; echo tmp > "$out/scratch.tmp"
echo '{json.dumps(report)}' > "$out/model_quantized_MemoryReport.json"
exit {code}
"""


def test_conversion_keeps_the_package_and_reads_the_memory_report(tmp_path, monkeypatch):
    conversion, package, reporter = convert(tmp_path, monkeypatch, successful_script())
    assert conversion == Conversion(converted=True, files=("dnnParams.xml", "model_quantized_MemoryReport.json",
                                                           "packerOut.zip"),
                                    fits=True, memory="3.89MB of 8.00MB (49%)", next_step=conversion.next_step,
                                    tool="imxconv-tf 3.18.2")
    assert sorted(p.name for p in package.iterdir()) == list(conversion.files), "the scratch folder is gone"
    assert "imx500-package -i packerOut.zip" in conversion.next_step
    assert "Converting for the IMX500 with imxconv-tf: done in" in reporter.stream.getvalue()
    assert "--logger-format json" in (tmp_path / "args.txt").read_text()
    assert "--no-input-persistency" not in (tmp_path / "args.txt").read_text()


def test_without_the_converter_or_java_the_reason_says_what_to_install(tmp_path, monkeypatch):
    conversion, _, _ = convert(tmp_path, monkeypatch, None)
    assert not conversion.converted and conversion.reason == (
        "Sony's converter imxconv-tf is not installed; pip install -e '.[imx500]' (Sony's edge-mdt bundle)")
    conversion, _, _ = convert(tmp_path, monkeypatch, successful_script(), java=None)
    assert conversion.reason.startswith("the IMX500 converter needs Java 17 or later, and java is not installed; "
                                        "install Java 17")
    conversion, _, _ = convert(tmp_path, monkeypatch, successful_script(), java=11)
    assert "and java is Java 11" in conversion.reason


def test_a_refused_model_is_an_error_with_the_converters_words(tmp_path, monkeypatch):
    script = """
echo '{"log.level": "ERROR", "message": "CODE: [USOP] The network contains unsupported ops: LSTM"}'
exit 2
"""
    with pytest.raises(ModelError, match=r"imxconv-tf could not convert the quantized model: CODE: \[USOP\] The "
                                         r"network contains unsupported ops: LSTM \(exit code 2\)"):
        convert(tmp_path, monkeypatch, script)


def test_the_converters_multi_line_refusal_is_one_line(tmp_path, monkeypatch):
    """The converter lists refused nodes with HTML line breaks, tabs and rules (as for SqueezeNet's ceil_mode)."""
    script = r"""
echo '{"log.level": "ERROR", "message": "The network is not aligned with SDSP converter'"'"'s restrictions. Errors are:<br>Node op: MaxPool, errors:<br>\tParam error - param: ceil_mode, value: 1<br>--------------------------------------------------<br>Node op: MaxPool"}'
exit 3
"""
    with pytest.raises(ModelError) as error:
        convert(tmp_path, monkeypatch, script)
    assert str(error.value) == ("imxconv-tf could not convert the quantized model: The network is not aligned with "
                                "SDSP converter's restrictions. Errors are:; Node op: MaxPool, errors:; Param error - "
                                "param: ceil_mode, value: 1; Node op: MaxPool (exit code 3)")


def test_a_model_too_large_for_the_chip_says_how_to_make_it_fit(tmp_path, monkeypatch):
    too_big = {"Memory Report": {**MEMORY_REPORT["Memory Report"], "Memory Usage": "8.38MB",
                                 "Memory Utilization": "105%", "Fit In Chip": False}}
    with pytest.raises(ModelError, match=r"does not fit in the IMX500's memory \(8.38MB of 8.00MB \(105%\)\); set "
                                         r'"imx500_input_persistency": false'):
        convert(tmp_path, monkeypatch, successful_script(too_big, code=1))


def test_input_persistency_can_be_switched_off(tmp_path, monkeypatch):
    convert(tmp_path, monkeypatch, successful_script(), imx500_input_persistency=False)
    assert "--no-input-persistency" in (tmp_path / "args.txt").read_text()


def test_the_converter_is_stopped_with_tl(tmp_path, monkeypatch):
    """Ctrl-C while converting stops the converter's whole process group, not only tl."""
    pid_file = tmp_path / "pid"
    script = f"""
echo $$ > {pid_file}
echo '{{"log.level": "INFO", "message": "Running version 3.18.2"}}'
sleep 60
"""
    from tlplugins.imx500 import converter

    def interrupt_soon(*args, **kwargs):
        raise KeyboardInterrupt

    real_parse = converter.parse
    monkeypatch.setattr(converter, "parse", lambda raw: interrupt_soon() if "Running" in raw else real_parse(raw))
    with pytest.raises(KeyboardInterrupt):
        convert(tmp_path, monkeypatch, script)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_layer_check_and_conversion_are_for_keras_and_torch_only(project):
    """Plugins that serve the IMX500 for two frameworks are never asked for the fake one."""
    manager = manager_with()
    assert manager.frameworks_of("imx500.converter") == ("keras", "torch")
    result = project.run(config=project.write(quantize=True))
    assert result.exit_code == 0 and "no converter plugin" in result.output


def test_tflite_models_need_a_framework_that_writes_them(trained):
    """The fake framework has no tl_export_tflite: asking for TFLite models is refused before any work."""
    trained.write(tflite=True)
    result = quantize_cli(trained)
    assert result.exit_code == 1
    assert one_line_error(result) == ('Error: no plugin implements tl_export_tflite (framework "fake" cannot export '
                                      "TFLite models); is a plugin blocked or not installed?")
    assert not (trained.root / "out" / "imx500").exists()
