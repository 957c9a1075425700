"""Named base models (`"base_model"`, `tl models`): chosen, refused and listed by the core, added by a plugin the
way the built-in packs add theirs, and every built-in base built as its declaration says."""

import json

import pytest
from click.testing import CliRunner

import tests.fake_framework

from tests.conftest import one_line_error
from tlcli.main import main
from tlcore.base_models import BaseModel, Imx500Status
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED


def mean_colour(size, weights, options):
    return {"name": "mean", "layers": ["mean"], "weights": weights}


def median_colour(size, weights, options):
    return {"name": "median", "layers": ["median"], "weights": weights}


class FakeBases:
    """A third-party plugin: named bases for the fake framework, and the loader that builds them."""

    TL_FRAMEWORK = "fake"

    def __init__(self, imx500=None):
        self.built = []
        self.imx500 = imx500

    @hookimpl
    def tl_config_keys(self):
        return [SHARED["base_model"], SHARED["mobilenet_alpha"], SHARED["weights"]]

    @hookimpl
    def tl_base_models(self):
        return [
            BaseModel("mobilenet_v2", "fake", "Mean colour", mean_colour, parameters=3, feature_size=3,
                      preprocessing="unit", options=("mobilenet_alpha",)),
            BaseModel("median_colour", "fake", "Median colour", median_colour, parameters=3, feature_size=3,
                      preprocessing="none", min_size=16, max_size=64, imx500=self.imx500),
        ]

    @hookimpl(tryfirst=True)
    def tl_load_base_model(self, config, reporter, base):
        self.built.append((base.name, config.options["weights"]))
        model = base.build(config.input_tensor_size, config.options["weights"], config.options)
        return {**model, "layers": model["layers"] + ["top"]}


@pytest.fixture
def fake_project(project):
    return project


def run(project, plugin, **values):
    from tlcore.api import train

    return train(project.write(**values), plugins=[plugin, tests.fake_framework])


def test_a_plugins_base_is_built_by_name_with_its_preprocessing(fake_project):
    plugin = FakeBases()
    result = run(fake_project, plugin, base_model="median_colour", weights=None)
    assert plugin.built == [("median_colour", None)]
    saved = json.loads((result.saved_model_dir / "preprocessing.json").read_text())
    assert saved["name"] == "none", "the base's preprocessing, not the framework's default (unit)"
    assert json.loads((fake_project.root / "results" / "results.json").read_text())["num_images"] == 6


def test_without_base_model_the_default_is_built(fake_project):
    plugin = FakeBases()
    run(fake_project, plugin)
    assert plugin.built == [("mobilenet_v2", "imagenet")]


@pytest.mark.parametrize("values, message", [
    ({"base_model": "median_colur"}, '"base_model" is "median_colur", which framework fake does not have; did you '
                                     'mean "median_colour"? available: median_colour, mobilenet_v2 (see `tl models`)'),
    ({"base_model": "median_colour", "mobilenet_alpha": 0.5},
     '"mobilenet_alpha" applies to base model mobilenet_v2 only, not to "median_colour"; remove it'),
    ({"base_model": "median_colour", "input_tensor_size": 96},
     'Median colour ("median_colour") takes images of 16 to 64 pixels, but input_tensor_size is 96; set it to 64 '
     "or less (224 is the size its ImageNet weights were trained at)"),
])
def test_a_wrong_base_model_is_one_line_before_anything_runs(fake_project, values, message):
    BUILT.clear()
    result = fake_project.run("-p", "tests.test_base_models", config=fake_project.write(**values))
    assert result.exit_code == 2 and message in one_line_error(result)
    assert BUILT == [] and not (fake_project.root / "out").exists()


def test_a_name_another_framework_has_says_so(fake_project):
    from tlcore.api import train
    from tlcore.errors import ConfigError

    with pytest.raises(ConfigError, match='"base_model" is "resnet18", which framework fake does not have; framework '
                                          "torch has it; available: median_colour, mobilenet_v2"):
        train(fake_project.write(base_model="resnet18"), plugins=[FakeBases(),
                                                                 tests.fake_framework])


def test_a_base_measured_not_to_fit_is_refused_before_training_when_quantizing(fake_project):
    from tlcore.api import train
    from tlcore.errors import ModelError

    status = Imx500Status(converts=True, memory_mb=6.0, fits=True, size=32, converter="imxconv-pt 3.18.2")
    plugin = FakeBases(imx500=status)
    run(fake_project, plugin, base_model="median_colour", input_tensor_size=32)  # 6 MB of 8 at the measured size
    with pytest.raises(ModelError, match=r'base model "median_colour" cannot run on the IMX500: it needs about 13\.50 '
                                         r"MB of the chip's 8\.00 MB at 48x48 \(estimated from 6\.00 MB measured at "
                                         r"32x32\); choose another base_model"):
        train(fake_project.write(base_model="median_colour", input_tensor_size=48, quantize=True),
              plugins=[plugin, tests.fake_framework, LayerCheck])
    assert not (fake_project.root / "out" / "imx500").exists()


class LayerCheck:
    """The built-in IMX500 layer check, for the fake framework (it serves keras and torch)."""

    @staticmethod
    @hookimpl
    def tl_check_model(config, reporter, base):
        from tlplugins.imx500.layers import check_measured

        check_measured(base, config, reporter)


def test_a_base_the_converter_refuses_is_a_warning_without_quantize(fake_project):
    refused = Imx500Status(converts=False, reason="layer Foo is not supported", converter="imxconv-pt 3.18.2")
    from tlcore.api import train

    output = []
    import tlcore.report

    original = tlcore.report.Reporter.warning
    try:
        tlcore.report.Reporter.warning = lambda self, message: output.append(message)
        train(fake_project.write(base_model="median_colour"),
              plugins=[FakeBases(imx500=refused), tests.fake_framework, LayerCheck])
    finally:
        tlcore.report.Reporter.warning = original
    assert ('base model "median_colour" cannot run on the IMX500: Sony\'s converter (imxconv-pt 3.18.2) refuses it: '
            "layer Foo is not supported; `tl quantize` would fail") in output


def test_tl_models_lists_every_frameworks_bases_and_their_imx500_status():
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    names = {framework: {r["name"] for r in records if r["framework"] == framework} for framework in ("keras", "torch")}
    assert len(names["keras"]) >= 6 and len(names["torch"]) >= 8
    assert {"mobilenet_v2", "efficientnet_b0"} <= names["keras"] and {"mobilenet_v2", "resnet18"} <= names["torch"]
    shared = names["keras"] & names["torch"]
    assert {"mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf"} <= shared
    for record in records:
        assert isinstance(record["parameters"], int) and record["parameters"] > 0
        assert record["name"] == record["name"].lower() and " " not in record["name"]
        status = record["imx500"]
        assert status is None or ({"converts", "memory_mb", "fits", "reason", "converter"} <= set(status)
                                  and isinstance(status["converts"], bool))
    same = {(r["name"], r["parameters"]) for r in records if r["name"] in shared}
    assert len(same) == len(shared), "the same network counts the same weights in both frameworks"
    table = CliRunner().invoke(main, ["models", "--framework", "torch"])
    assert table.exit_code == 0 and "resnet18" in table.output and "efficientnet_v2_b0" not in table.output


def test_tl_models_lists_a_plugins_base_and_refuses_an_unknown_framework():
    result = CliRunner().invoke(main, ["models", "--json", "--framework", "fake", "-p", "tests.test_base_models"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [(r["name"], r["default"], r["plugin"]) for r in listed] == [
        ("median_colour", False, "tests.test_base_models"), ("mobilenet_v2", True, "tests.test_base_models")]
    result = CliRunner().invoke(main, ["models", "--framework", "jax"])
    assert result.exit_code == 2
    assert one_line_error(result) == 'Error: framework "jax" has no named base models; frameworks with some: keras, torch'


def test_the_python_api_lists_the_same_bases_as_the_command():
    import tlcore

    result = CliRunner().invoke(main, ["models", "--json"])
    assert tlcore.list_models() == json.loads(result.output)


# This module as a plugin (``-p tests.test_base_models``): the fake framework's bases, as FakeBases declares them.
TL_FRAMEWORK = "fake"
BUILT = []
_PLUGIN = FakeBases()
_PLUGIN.built = BUILT


@hookimpl
def tl_config_keys():
    return _PLUGIN.tl_config_keys()


@hookimpl
def tl_base_models():
    return _PLUGIN.tl_base_models()


@hookimpl(tryfirst=True)
def tl_load_base_model(config, reporter, base):
    return _PLUGIN.tl_load_base_model(config, reporter, base)


def test_a_measurement_at_other_options_is_not_applied(fake_project):
    """MobileNetV2 was measured at width 1.0: at another width its figure says nothing, so quantizing is warned
    about, not refused."""
    from tlplugins.imx500.layers import check_measured

    too_big = Imx500Status(converts=True, memory_mb=12.0, fits=False, size=32)
    base = next(b for b in FakeBases(imx500=too_big).tl_base_models() if b.name == "median_colour")
    base = BaseModel(**{**base.__dict__, "name": "mobilenet_v2", "options": ("mobilenet_alpha",)})
    from tlcore.config import load_config

    messages = []

    class Collect:
        def warning(self, message):
            messages.append(message)

    narrow = load_config(fake_project.write(mobilenet_alpha=0.5, quantize=True),
                         plugin_keys=[SHARED["mobilenet_alpha"]])
    check_measured(base, narrow, Collect())
    assert messages == ['base model "mobilenet_v2" was not measured with mobilenet_alpha 0.5 (see `tl models`): '
                        "whether it converts and fits is known only after quantizing"]
    from tlcore.errors import ModelError

    wide = load_config(fake_project.write(quantize=True), plugin_keys=[SHARED["mobilenet_alpha"]])
    with pytest.raises(ModelError, match="it needs 12.00 MB of the chip's 8.00 MB at 32x32"):
        check_measured(base, wide, Collect())
