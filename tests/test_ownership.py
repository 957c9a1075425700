"""tl never replaces or deletes what it did not write, and no kill while publishing loses a model or mixes two
runs' reports."""

import pytest

from tlcore.config import load_config
from tlcore.errors import ConfigError


def test_evaluate_result_dir_inside_saved_model_is_refused_when_read(project):
    for inside in ("out/saved_model", "out/saved_model/results"):
        with pytest.raises(ConfigError, match=r'"evaluate_result_dir" \(.*\) is inside .*saved_model, which every run '
                                              "replaces whole; choose a folder outside it"):
            load_config(project.write(evaluate_result_dir=inside))
    assert not (project.root / "out").exists()
