"""Real quantization for the IMX500 with MCT, and conversion with Sony's converter, for both frameworks.

Marked `imx500`: they need the `.[imx500]` extra (Sony's converter and Java 17), which CI installs.
"""

import json

import numpy as np
import pytest

from tests.builders import texture_dataset
from tests.test_torch import SHARED, texture_project

pytestmark = pytest.mark.imx500


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    """Textures with 300 validation images: the quantization's effect is a few images either way, so
    the comparison needs enough of them (quantized within 0.7 points of float over 4 runs here)."""
    return texture_dataset(tmp_path_factory.mktemp("textures"), train_per_class=40, val_per_class=100, crop=64)


BASES = {"keras": "mobilenet_v3_small", "torch": "squeezenet1_0"}
"""A small base other than the default MobileNetV2 for each framework, trained, quantized and converted end to end
(SqueezeNet is built with ceil_mode off, which the converter requires). bench/models.py converts every base, the
default included, at its full size."""


@pytest.fixture(scope="module")
def quantized(textures, tmp_path_factory):
    """``tl run`` with ``"quantize": true`` for each framework (:data:`BASES`): ``{framework: (project, result)}``."""
    done = {}
    for framework in ("keras", "torch"):
        settings = {key: value for key, value in SHARED.items()
                    if key != "mobilenet_alpha" or BASES[framework] == "mobilenet_v2"}
        project = texture_project(tmp_path_factory.mktemp(framework), textures, framework=framework, quantize=True,
                                  quantization_images=64, base_model=BASES[framework], **settings)
        done[framework] = project, project.run(fake=False)
    return done


def device_input(project, textures):
    """The validation images as the IMX500 gives them (raw RGB 0-255, resized), computed with PIL, not tl,
    and laid out as the package's preprocessing.json says."""
    from PIL import Image

    folder = project.root / "out" / "imx500"
    device = json.loads((folder / "preprocessing.json").read_text())
    names = (folder / "labels.txt").read_text().splitlines()
    paths = sorted((textures / "validation").glob("*/*.jpg"))
    size = device["size"]
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
                       for p in paths])
    if device["layout"] == "NCHW":
        pixels = pixels.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(pixels), np.asarray([names.index(p.parent.name) for p in paths])


def package_scores(folder, framework, images):
    """The scores of the package's quantized model (MCT's own loaders, not tl's) for device input ``images``."""
    import mct_quantizers

    if framework == "keras":
        model = mct_quantizers.keras_load_quantized_model(str(folder / "model_quantized.keras"), compile=False)
        return model.predict(images, verbose=0)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model_quantized.onnx"), mct_quantizers.get_ort_session_options(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.tensorflow
@pytest.mark.torch
@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_quantized_accuracy_is_measured_and_close_to_the_float_one(quantized, framework):
    project, result = quantized[framework]
    assert result.exit_code == 0, result.output
    run = json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
    assert run["configuration"]["base_model"] == BASES[framework]
    results = project.results()
    drop = results["top_1_accuracy"] - results["quantized_top_1_accuracy"]
    assert abs(drop) <= max(0.02, 1 / results["num_images"]) + 1e-9, results
    assert f"Top-1 accuracy: float {results['top_1_accuracy']:.4f}, quantized " \
           f"{results['quantized_top_1_accuracy']:.4f}" in result.output
    assert results["quantized_num_images"] == 300 and set(results["quantized_per_class"]) == {"brick", "grass", "gravel"}


@pytest.mark.tensorflow
@pytest.mark.torch
@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_the_package_is_converted_and_its_model_takes_raw_pixels(quantized, textures, framework):
    project, result = quantized[framework]
    folder = project.root / "out" / "imx500"
    names = {p.name for p in folder.iterdir()}
    assert {"packerOut.zip", "dnnParams.xml", "labels.txt", "quantization.json"} <= names
    assert "model_quantized_MemoryReport.json" in names
    report = json.loads((folder / "model_quantized_MemoryReport.json").read_text())["Memory Report"]
    assert report["Fit In Chip"] is True and "fits in the chip: yes" in result.output
    assert 'scale="1.0" format="unsigned"' in (folder / "dnnParams.xml").read_text(), "the device feeds raw pixels"
    assert "imx500-package -i packerOut.zip" in result.output

    images, labels = device_input(project, textures)
    scores = package_scores(folder, framework, images)
    accuracy = float(np.mean(scores.argmax(axis=1) == labels))
    assert abs(accuracy - project.results()["quantized_top_1_accuracy"]) <= 1 / len(labels) + 1e-9


@pytest.mark.torch
def test_gptq_runs_and_reports_its_steps(textures, tmp_path):
    project = texture_project(tmp_path, textures, framework="torch", **{**SHARED, "epochs": 2})
    assert project.run(fake=False).exit_code == 0
    project.write(quantization_method="gptq", gptq_epochs=1, quantization_images=32)
    from click.testing import CliRunner

    from tlcli.main import main

    result = CliRunner().invoke(main, ["quantize", str(project.config_path), "--block", "imx500.converter"])
    assert result.exit_code == 0, result.output
    assert "GPTQ (1 epochs) with TPC 4.0, calibrated on 32 training images" in result.output
    assert project.results()["quantization"]["method"] == "gptq"
    assert (project.root / "out" / "imx500" / "model_quantized.onnx").is_file()


@pytest.mark.tensorflow
def test_a_keras_layer_the_imx500_refuses_stops_the_run_before_training(tmp_path):
    import io

    import tensorflow as tf

    from tlplugins.imx500.layers import tl_check_model
    from tests.test_torch import user_config
    from tlcore.errors import ModelError
    from tlcore.report import Reporter

    inputs = tf.keras.Input((8, 16))
    outputs = tf.keras.layers.LSTM(4, name="memory")(tf.keras.layers.Dense(16, activation="elu", name="dense")(inputs))
    model = tf.keras.Model(inputs, outputs)
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    config = user_config(tmp_path, None, framework="keras", quantize=True)
    with pytest.raises(ModelError, match=r'layer "dense" \(Dense with activation elu\) cannot run on the IMX500 '
                                         r"\(and 1 more layers\): use relu"):
        tl_check_model(model=model, config=config, reporter=reporter, base=None)
    import dataclasses

    tl_check_model(model=model, config=dataclasses.replace(config, quantize=False), reporter=reporter, base=None)
    warnings = reporter.err.getvalue()
    assert 'layer "memory" (LSTM) cannot run on the IMX500: recurrent layers' in warnings
    assert "`tl quantize` would fail" in warnings


@pytest.mark.torch
def test_a_torch_layer_the_imx500_refuses_is_named(tmp_path):
    import io

    from torch import nn

    from tlplugins.imx500.layers import tl_check_model
    from tests.test_torch import user_config
    from tlcore.errors import ModelError
    from tlcore.report import Reporter

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ELU(), nn.Conv3d(4, 4, 1), nn.PixelShuffle(2))
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    with pytest.raises(ModelError, match=r'layer "1" \(ELU\) cannot run on the IMX500 \(and 1 more layers\): use ReLU'):
        tl_check_model(model=model, config=user_config(tmp_path, None, quantize=True), reporter=reporter, base=None)
    import dataclasses

    tl_check_model(model=model, config=dataclasses.replace(user_config(tmp_path, None), quantize=False),
                   reporter=reporter, base=None)
    assert 'layer "3" (PixelShuffle) is not known to the IMX500 converter' in reporter.err.getvalue()


@pytest.mark.tensorflow
@pytest.mark.torch
@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_tl_predict_runs_the_quantized_model_as_the_device_would(quantized, textures, framework):
    """`tl predict --quantized` on the real MCT model (keras .keras, torch ONNX): its best labels are those of
    the quantized model fed raw pixels, as the package's own model gives them."""
    from tests.test_predict import invoke

    project, _ = quantized[framework]
    folder = project.root / "out" / "imx500"
    paths = sorted((textures / "validation").glob("*/*.jpg"))[::25]
    result = invoke("predict", project.root / "out", *paths, "--quantized", "--json", "--top-k", "1")
    assert result.exit_code == 0, result.output
    assert f"(quantized, framework {framework}, 3 classes)" in result.stderr
    entries = json.loads(result.stdout)
    assert [entry["path"] for entry in entries] == [str(path) for path in paths]
    names = (folder / "labels.txt").read_text().splitlines()
    expected = package_scores(folder, framework, device_input(project, textures)[0][::25])
    predicted = [entry["predictions"][0] for entry in entries]
    agree = sum(best["label"] == names[row.argmax()] for best, row in zip(predicted, expected, strict=True))
    assert agree >= len(paths) - 1, "the device model's labels (resizing may differ for one image)"
    assert all(0 <= best["score"] <= 1 for best in predicted)
