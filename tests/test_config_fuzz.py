"""Fuzzing: no configuration file, however odd, makes tl fail with anything but a ConfigError."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlcore.config import CORE_KEYS, RunConfig, load_config
from tlcore.errors import ConfigError

PLUGIN_KEYS = []
KEY_NAMES = [key.name for key in CORE_KEYS]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["dataset/training", "dataset/validation", "out", "", "~", "../", "/", "\u00e9t\u00e9 1", "a\0b"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
configurations = st.dictionaries(st.sampled_from(KEY_NAMES) | st.text(max_size=12), json_values, max_size=12)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(path):
    try:
        config = load_config(path, plugin_keys=PLUGIN_KEYS)
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
    else:
        assert isinstance(config, RunConfig)


@FUZZ
@given(values=configurations)
def test_any_json_object_gives_a_config_or_a_one_line_config_error(project, values):
    path = project.root / "configuration.json"
    path.write_text(json.dumps({**project.values, **values}))
    check(path)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_give_a_config_or_a_one_line_config_error(project, data):
    path = project.root / "configuration.json"
    path.write_bytes(data)
    check(path)
