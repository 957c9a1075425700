"""Meta-tests: every hook is documented under its exact signature and exercised by a test."""

import inspect
import re
from pathlib import Path

from tlcore import hookspecs
from tlcore.run import ANSWER_HOOKS

REPO = Path(__file__).resolve().parent.parent
HOOK_DOCS = (REPO / "docs" / "hooks.md").read_text()


def hook_specs():
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {name: function for name, function in vars(hookspecs).items()
            if callable(function) and hasattr(function, marker)}


def test_every_hook_is_documented_under_its_exact_signature():
    headings = re.findall(r"^## (tl_\w+\(.*\))$", HOOK_DOCS, re.M)
    expected = [f"{name}{inspect.signature(function)}" for name, function in hook_specs().items()]
    assert sorted(headings) == sorted(expected)


def test_every_documented_argument_has_a_bullet():
    for name, function in hook_specs().items():
        section = HOOK_DOCS.split(f"## {name}(", 1)[1].split("\n## ", 1)[0]
        for argument in inspect.signature(function).parameters:
            assert f"- `{argument}`:" in section, f"{name}: argument {argument} undocumented"
        assert "```python" in section, f"{name}: no example"


def test_every_hook_has_a_docstring_saying_how_results_combine():
    for name, function in hook_specs().items():
        doc = inspect.getdoc(function) or ""
        options = getattr(function, f"{hookspecs.PROJECT_NAME}_spec")
        if options.get("firstresult"):
            assert "Stops at first non-None result" in doc, name
        else:
            assert "Observer" in doc or "Every plugin is asked" in doc, name
        assert ":returns:" in doc or "Observer" in doc, name


def test_answer_hooks_are_exactly_the_firstresult_hooks():
    firstresult = {name for name, function in hook_specs().items()
                   if getattr(function, f"{hookspecs.PROJECT_NAME}_spec").get("firstresult")}
    assert firstresult == set(ANSWER_HOOKS)


def test_every_hook_is_exercised_by_a_test():
    sources = "\n".join(path.read_text() for path in (REPO / "tests").glob("test_*.py") if path.name != "test_meta.py")
    untested = [name for name in hook_specs() if not re.search(rf"\b{name}\b", sources)]
    assert untested == []
