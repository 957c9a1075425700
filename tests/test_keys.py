"""Each configuration key is declared once, by the part of tl that reads it; everything else follows from it."""

import json
import re

import pytest
from click.testing import CliRunner

from tlcli.main import main
from tlplugins import BUILTIN_PLUGINS
from tests.conftest import REPO, one_line_error
from tlcore.errors import ConfigError
from tlcore.hookspecs import hookimpl
from tlcore.keys import CORE_KEYS, OMITTED, SHARED, SHARED_KEYS, ConfigKey
from tlcore.pluginmanager import make_plugin_manager
from tlcore.prepare import prepare
from tlcore.schema import declared_keys

PLUGIN_KEYS = {"tensorboard": "reports.tensorboard", "imx500_input_persistency": "imx500.converter",
               "tpc_version": "keras.quantize, torch.quantize", "source_keras_model": "keras.base_model",
               "source_torch_model": "torch.base_model"}
"""Keys the built-in plugins declare, and which plugins."""


def test_built_in_plugins_declare_the_keys_only_they_read():
    owners = {entry.key.name: entry.owner for entry in declared_keys(make_plugin_manager(BUILTIN_PLUGINS))}
    for name, plugins in PLUGIN_KEYS.items():
        assert owners[name] == plugins
    assert not set(PLUGIN_KEYS) & {key.name for key in CORE_KEYS}, "not core keys as well"
    shared = {"dataset_format": "datasets.imagenet_folder, datasets.listed",
              "base_model": "keras.base_model, torch.base_model", "weights": "keras.base_model, torch.base_model", "mobilenet_alpha": "keras.base_model, torch.base_model",
              "distribute": "keras.distributed, torch.distributed",
              "worker_timeout": "keras.distributed, torch.distributed",
              "remove_top": "top_removal.classifier_head, top_removal.torch_head"}
    assert {key.name: owners[key.name] for key in SHARED_KEYS} == shared, "a shared key: each reader declares it"


def test_a_blocked_plugins_key_is_ignored_with_a_note_and_its_feature_is_off(project):
    config = project.write(tensorboard=True, block_plugins=["reports.tensorboard"])
    result = project.run(config=config)
    assert result.exit_code == 0, result.output
    assert 'configuration key "tensorboard" is not used by any loaded plugin' in result.output
    assert not (project.root / "results" / "tensorboard").exists()


def test_a_shared_key_declared_differently_is_refused_and_declared_equally_is_fine(project):
    class Same:
        @hookimpl
        def tl_config_keys(self):
            return [SHARED["weights"]]

    class Different:
        @hookimpl
        def tl_config_keys(self):
            return [ConfigKey("weights", "string", default="mine")]

    prepared = prepare(project.write(weights=None), BUILTIN_PLUGINS, extra=["tests.fake_framework"], plugins=[Same()])
    assert prepared.config.options["weights"] is None
    with pytest.raises(ConfigError, match='configuration key "weights" is declared twice, differently'):
        prepare(project.write(framework="keras"), BUILTIN_PLUGINS, plugins=[Different()])


def test_a_plugin_key_the_trained_model_does_not_depend_on_may_change_before_resuming_or_quantizing(project):
    neutral = prepare(project.write(framework="keras"), BUILTIN_PLUGINS).config.neutral
    assert {"tensorboard", "imx500_input_persistency", "quantize", "evaluate_result_dir"} <= neutral
    assert not {"epochs", "learning_rate", "dataset_training_dir"} & neutral


def test_tl_init_writes_the_keys_their_declarations_mark(tmp_path):
    import io

    from tests.conftest import touch_images
    from tlcore.init import init
    from tlcore.report import Reporter

    touch_images(tmp_path / "photos", ["cat", "dog"], per_class=5)
    init(tmp_path / "photos", Reporter(stream=io.StringIO(), err=io.StringIO()), folder=tmp_path, split=0.2)
    written = json.loads((tmp_path / "configuration.json").read_text())
    marked = {key.name for key in (*CORE_KEYS, *SHARED_KEYS) if key.starter is not OMITTED}
    assert marked == set(written) - {"dataset_training_dir", "dataset_validation_dir", "evaluate_label_file", "seed"}
    assert written["weights"] == "imagenet" and written["epochs"] == 10 and written["output_dir"] == "output"


def test_the_documented_key_table_is_the_one_the_declarations_make():
    """docs/configuration.md's table is ``tl config keys --markdown`` with the built-in plugins."""
    page = (REPO / "docs" / "configuration.md").read_text()
    table = re.search(r"<!-- keys -->\n(.*?)<!-- /keys -->", page, re.S)
    assert table, "docs/configuration.md has no <!-- keys --> table"
    result = CliRunner().invoke(main, ["config", "keys", "--markdown"])
    assert result.exit_code == 0, result.output
    assert table.group(1) == result.output, "run: tl config keys --markdown, and paste it into docs/configuration.md"


def test_tl_config_keys_lists_every_key_with_who_reads_it():
    result = CliRunner().invoke(main, ["config", "keys"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^tensorboard +boolean, default false +\[plugin reports.tensorboard\]$", result.output, re.M)
    assert re.search(r"^source_torch_model +path or null, default null +\[plugin torch.base_model; framework torch "
                     r"only\]$", result.output, re.M)
    assert re.search(r"^epochs +integer 1..100000, default 10$", result.output, re.M)


def test_an_unknown_plugin_for_the_key_list_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["config", "keys", "-p", "tl_no_such_plugin_module"])
    assert result.exit_code != 0
    assert one_line_error(result).startswith("Error: ")


def test_each_core_key_is_a_typed_field_of_the_checked_configuration_with_the_declared_default():
    """A core key is declared in CORE_KEYS and read as ``config.<name>``: the two never drift apart."""
    import dataclasses

    from tlcore.config import RunConfig

    fields = {field.name: field for field in dataclasses.fields(RunConfig)}
    for key in CORE_KEYS:
        assert key.name in fields, f"RunConfig has no field {key.name}"
        default = fields[key.name].default
        if key.required or key.type == "path":
            continue  # required, or resolved from the configuration's folder
        expected = tuple(key.default) if isinstance(key.default, list) else key.default
        assert default == expected, f"{key.name}: RunConfig says {default!r}, the declaration {key.default!r}"
    not_keys = {"config_file", "given_keys", "set_keys", "set_label", "ignored_keys", "options", "neutral_keys"}
    assert set(fields) - not_keys == {key.name for key in CORE_KEYS}, "a field that is no key, or a plugin's key"
