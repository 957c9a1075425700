"""Devices and precision: the line at the start of a run, "mixed_precision", the saved model in float32, and the
gpu extra's install."""

import json
import subprocess
import sys

import pytest

import tests.fake_framework as fake
import tlcore
from tests.conftest import REPO
from tlcore.errors import ConfigError, PluginError
from tlcore.frameworks import Devices
from tlcore.hookspecs import hookimpl


class TwoGPUs:
    """Devices as a framework on a machine with two GPUs would describe them."""

    TL_FRAMEWORK = "fake"

    def __init__(self, benefits):
        self.benefits = benefits

    @hookimpl
    def tl_devices(self, config):
        return Devices(("GPU 0: Test A (compute 8.0)", "GPU 1: Test A (compute 8.0)"),
                       mixed_precision_benefits=self.benefits)


@pytest.fixture
def config(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return dict(project.values)


def recorded(result):
    return json.loads((result.saved_model_dir / "tl_run.json").read_text())["configuration"]


@pytest.mark.parametrize("benefits, shown", [(True, "on"), (False, "off")])
def test_the_run_says_which_devices_it_uses_and_auto_mixed_precision_follows_them(config, capsys, benefits, shown):
    result = tlcore.train(config, plugins=[fake, TwoGPUs(benefits)])
    assert f"Devices: GPU 0: Test A (compute 8.0); GPU 1: Test A (compute 8.0); mixed precision {shown}\n" \
        in capsys.readouterr().out
    assert recorded(result)["mixed_precision"] is benefits, "tl_run.json records what the run did"


def test_a_framework_without_a_devices_step_says_nothing_and_computes_in_float32(config, capsys):
    result = tlcore.train(config, plugins=[fake])
    assert "Devices:" not in capsys.readouterr().out
    assert recorded(result)["mixed_precision"] is False


def test_mixed_precision_is_checked_like_every_key(config):
    with pytest.raises(ConfigError, match=r'"mixed_precision" is "yes"; use "auto" \(on where the device benefits\), '
                                          r"true or false"):
        tlcore.train(config, plugins=[fake], mixed_precision="yes")


def test_a_devices_answer_of_the_wrong_type_names_the_plugin(config):
    class Wrong:
        TL_FRAMEWORK = "fake"

        @hookimpl
        def tl_devices(self):
            return "GPU"

    with pytest.raises(PluginError, match='plugin "Wrong" returned str from tl_devices'):
        tlcore.train(config, plugins=[fake, Wrong()])


def test_devices_describe_the_cpu_by_its_cores():
    assert Devices().describe(False).startswith("Devices: CPU (") and "core" in Devices().cpu


def small(tmp_path, **changes):
    return {"dataset_training_dir": str(REPO / "examples" / "photos" / "dataset" / "training"),
            "dataset_validation_dir": str(REPO / "examples" / "photos" / "dataset" / "validation"),
            "weights": None, "mobilenet_alpha": 0.35, "input_tensor_size": 64, "epochs": 1, "seed": 0,
            "output_dir": str(tmp_path / "out"), "evaluate_result_dir": str(tmp_path / "out"), **changes}


@pytest.mark.tensorflow
def test_keras_mixed_precision_trains_and_saves_a_float32_model(tmp_path, capsys):
    import tensorflow as tf

    result = tlcore.train(small(tmp_path, mixed_precision=True))
    assert "Devices: CPU (" in capsys.readouterr().out
    model = tf.keras.models.load_model(str(result.saved_model_dir), compile=False)

    def layers(model):
        for layer in model.layers:
            yield layer
            yield from layers(layer) if hasattr(layer, "layers") else ()

    assert {layer.dtype_policy.name for layer in layers(model)} == {"float32"}, "MCT quantizes a float32 model"
    assert {weight.dtype for weight in model.weights} == {tf.float32}
    assert tf.keras.mixed_precision.global_policy().name == "mixed_float16"
    tlcore.train(small(tmp_path, mixed_precision=False))
    assert tf.keras.mixed_precision.global_policy().name == "float32", "the next run in the process is float32"


@pytest.mark.torch
def test_torch_mixed_precision_trains_and_saves_a_float32_model(tmp_path):
    import torch

    result = tlcore.train(small(tmp_path, framework="torch", mixed_precision=True))
    assert result.metrics["num_images"] == 32
    module = torch.export.load(str(result.saved_model_dir / "model.pt2")).module()
    assert {parameter.dtype for parameter in module.parameters()} == {torch.float32}
    assert module(torch.zeros(1, 3, 64, 64)).dtype == torch.float32


@pytest.mark.network
def test_the_gpu_extra_resolves_with_tensorflow_cuda_libraries(tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                           f"{REPO}[gpu]"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    names = {item["metadata"]["name"] for item in json.loads(report.read_text())["install"]}
    installed = subprocess.run([sys.executable, "-m", "pip", "list", "--format", "json"], capture_output=True,
                               text=True, check=True).stdout
    names |= {item["name"] for item in json.loads(installed)}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12"} <= names, "TensorFlow's CUDA libraries"
    assert any(name in ("tensorflow", "tensorflow-cpu") for name in names) and "tensorflow-cpu" not in names
