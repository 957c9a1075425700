"""Every built-in named base builds as its declaration says (without weights: parameters, feature size, no head,
no input scaling the IMX500 refuses), and a non-default base of each framework trains, saves and predicts end to
end with random weights."""

import json

import pytest
from click.testing import CliRunner

from tests.builders import colour_project
from tlcli.main import main


def declared(framework):
    from tlcore.base_models import registered_base_models
    from tlcore.pluginmanager import make_plugin_manager

    return [base for (owner, _), (base, _) in sorted(registered_base_models(make_plugin_manager()).items())
            if owner == framework]


@pytest.mark.tensorflow
def test_every_keras_base_builds_as_declared():
    import numpy as np
    import tensorflow as tf

    from tlplugins.imx500.layers import keras_findings
    from tlplugins.keras.bases import INPUT_SCALING

    for base in declared("keras"):
        model = base.build(base.min_size, None, {})
        weights = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        assert weights == base.parameters, base.name
        assert model.output_shape[-1] == base.feature_size, base.name
        kinds = {type(layer).__name__ for layer in model.layers}
        assert not kinds & {"Dense", "Softmax", *INPUT_SCALING}, f"{base.name}: a head or input scaling left in"
        assert not [finding for finding in keras_findings(model) if finding[3]], f"{base.name}: a layer the IMX500 refuses"
        assert base.preprocessing in ("mobilenet_v2", "imagenet", "unit")
        tf.keras.backend.clear_session()


@pytest.mark.torch
def test_every_torch_base_builds_as_declared():
    import torch
    import torchvision

    from tlplugins.imx500.layers import torch_findings
    from tlplugins.torch.bases import IMAGENET_WEIGHTS

    for base in declared("torch"):
        model = base.build(base.min_size, None, {})
        assert sum(p.numel() for p in model.parameters()) == base.parameters, base.name
        with torch.inference_mode():
            assert tuple(model(torch.zeros(2, 3, base.min_size, base.min_size)).shape) == (2, base.feature_size)
        assert not [m for m in model.modules() if isinstance(m, torch.nn.Linear)], f"{base.name}: its head is left in"
        assert not [finding for finding in torch_findings(model) if finding[3]], f"{base.name}: a refused layer"
        enum = getattr(torchvision.models, base.imagenet_weights.split()[-1])
        url = getattr(enum, IMAGENET_WEIGHTS.get(base.name, "IMAGENET1K_V1")).url
        assert url.rsplit("/", 1)[-1] == base.weights_file.name, f"{base.name}: where its weights are cached"


def test_the_default_base_has_the_preprocessing_each_framework_had_before():
    assert {base.name: base.preprocessing for base in declared("keras")}["mobilenet_v2"] == "mobilenet_v2"
    assert {base.name: base.preprocessing for base in declared("torch")}["mobilenet_v2"] == "imagenet"


@pytest.mark.parametrize("framework, name", [
    pytest.param("keras", "mobilenet_v3_small", marks=pytest.mark.tensorflow),
    pytest.param("torch", "resnet18", marks=pytest.mark.torch),
])
def test_a_non_default_base_trains_saves_and_predicts(tmp_path, framework, name):
    config = colour_project(tmp_path, size=32, framework=framework, base_model=name, epochs=2)
    data = json.loads(config.read_text())
    del data["mobilenet_alpha"]
    config.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["run", str(config)])
    assert result.exit_code == 0, result.output
    title = {"mobilenet_v3_small": "MobileNetV3-Small", "resnet18": "ResNet-18"}[name]
    assert f"Base model: {'torchvision ' if framework == 'torch' else ''}{title} (" in result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["num_images"] == 2
    expected = {"keras": "mobilenet_v2", "torch": "imagenet"}[framework]
    assert json.loads((tmp_path / "out" / "saved_model" / "preprocessing.json").read_text())["name"] == expected
    run_record = json.loads((tmp_path / "out" / "saved_model" / "tl_run.json").read_text())
    assert run_record["configuration"]["base_model"] == name
    image = next((tmp_path / "data" / "validation" / "red").iterdir())
    predicted = CliRunner().invoke(main, ["predict", str(tmp_path / "out"), str(image), "--json"])
    assert predicted.exit_code == 0, predicted.output
    assert {entry["label"] for entry in json.loads(predicted.stdout)[0]["predictions"]} == {"red", "green"}


@pytest.mark.tensorflow
def test_a_keras_weights_file_loads_into_a_base_whose_input_scaling_is_left_out(tmp_path):
    """EfficientNet-B0 carries its input scaling as layers, which tl leaves out: weights saved from Keras' own
    EfficientNetB0(include_top=False) still load, every layer's, and the scaling is gone."""
    import numpy as np
    import tensorflow as tf

    base = next(base for base in declared("keras") if base.name == "efficientnet_b0")
    donor = tf.keras.applications.EfficientNetB0(input_shape=(32, 32, 3), include_top=False, weights=None)
    for variable in donor.trainable_weights[:3]:
        variable.assign(np.random.default_rng(0).normal(size=variable.shape).astype("float32"))
    donor.save_weights(tmp_path / "efficientnet_b0.h5")
    model = base.build(32, tmp_path / "efficientnet_b0.h5", {})
    assert not {type(layer).__name__ for layer in model.layers} & {"Rescaling", "Normalization"}
    for layer in (layer for layer in model.layers if layer.weights):
        for mine, theirs in zip(layer.get_weights(), donor.get_layer(layer.name).get_weights(), strict=True):
            assert np.array_equal(mine, theirs), layer.name
