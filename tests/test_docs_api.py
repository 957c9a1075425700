"""docs/api.md documents the real API: its signatures are the functions', its attribute tables the classes'."""

import dataclasses
import inspect
import re

import pytest

import tlcore
from tests.conftest import REPO

DOC = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
HEADING = re.compile(r"^### `tlcore\.(\w+)(\(.*\))? ?(?:-> (.+))?`$", re.M)
FUNCTIONS = [name for name in tlcore.__all__ if inspect.isfunction(getattr(tlcore, name))]
CLASSES = ["RunResult", "QuantizationResult", "HealthReport", "Prediction"]


def documented():
    return {match[1]: (match[2], match[3]) for match in HEADING.finditer(DOC)}


def plain(function):
    """The signature as the docs write it: without annotations."""
    signature = inspect.signature(function)
    parameters = [parameter.replace(annotation=inspect.Parameter.empty)
                  for parameter in signature.parameters.values()]
    return str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))


def test_every_public_function_is_documented():
    assert set(FUNCTIONS) == {"train", "quantize", "check", "predict", "list_plugins", "list_models"}
    assert set(FUNCTIONS) <= set(documented())
    assert "hookimpl" in documented()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_documented_signatures_are_the_real_ones(name):
    parameters, returns = documented()[name]
    function = getattr(tlcore, name)
    assert parameters == plain(function)
    assert returns == inspect.signature(function).return_annotation


def table(heading):
    """The first column of the attribute table under ``### `heading```."""
    section = DOC.split(f"### `{heading}`", 1)[1].split("\n#", 1)[0]
    return [re.sub(r"\(.*\)$", "", row.split("`")[1]) for row in section.splitlines() if row.startswith("| `")]


@pytest.mark.parametrize("name", CLASSES)
def test_every_documented_attribute_exists_and_every_field_is_documented(name):
    cls = getattr(tlcore, name)
    attributes = table(name)
    assert attributes, f"docs/api.md has no table for {name}"
    for attribute in attributes:
        assert hasattr(cls, attribute) or attribute in {field.name for field in dataclasses.fields(cls)}, attribute
    assert {field.name for field in dataclasses.fields(cls)} <= set(attributes)


def test_the_classes_documented_are_the_ones_returned():
    returned = {documented()[name][1] for name in FUNCTIONS}
    assert returned == {"RunResult", "QuantizationResult", "HealthReport", "list[Prediction]", "dict[str, Any]",
                        "list[dict[str, Any]]"}


def test_the_repository_notebook_is_valid_and_has_no_outputs():
    nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
    notebook = nbformat.read(REPO / "examples" / "notebook.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code), "outputs stripped in git"
