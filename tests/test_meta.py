"""Meta-tests: every hook is documented under its exact signature and exercised by a test."""

import inspect
import re
from pathlib import Path

from tlcore import hookspecs
from tlcore.hookdocs import hook_specs
from tlcore.run import ANSWER_HOOKS

REPO = Path(__file__).resolve().parent.parent
HOOK_DOCS = (REPO / "docs" / "hooks.md").read_text()




def plain_signature(name, function):
    """``tl_train(model, dataset, ...)``: the hook's name and argument names (the types are in the bullets)."""
    return f"{name}({', '.join(inspect.signature(function).parameters)})"


def test_every_hook_is_documented_under_its_exact_signature():
    headings = re.findall(r"^## (tl_\w+\(.*\))$", HOOK_DOCS, re.M)
    expected = [plain_signature(name, function) for name, function in hook_specs().items()]
    assert sorted(headings) == sorted(expected)


def test_every_documented_argument_has_a_bullet():
    for name, function in hook_specs().items():
        section = HOOK_DOCS.split(f"## {name}(", 1)[1].split("\n## ", 1)[0]
        for argument in inspect.signature(function).parameters:
            assert re.search(rf"^- `{argument}` \(`[^`]+`\):", section, re.M), f"{name}: argument {argument} undocumented"
        assert "```python" in section, f"{name}: no example"


def test_every_hook_has_a_docstring_saying_how_results_combine():
    for name, function in hook_specs().items():
        doc = inspect.getdoc(function) or ""
        options = getattr(function, f"{hookspecs.PROJECT_NAME}_spec")
        if options.get("firstresult"):
            assert "*Answer hook" in doc and "first non-None result wins" in doc, name
        else:
            assert "*Observer*" in doc or "*Collecting*" in doc, name
        assert "- Returns:" in doc or "*Observer*" in doc, name


def test_the_hook_reference_is_made_from_the_specifications_docstrings():
    """docs/hooks.md below its marker is the docstrings of tlcore/hookspecs/, in the order a run calls the hooks."""
    from tlcore.hookdocs import page

    assert HOOK_DOCS == page(HOOK_DOCS), "run: python -m tlcore.hookdocs docs/hooks.md"
    assert list(hook_specs()) == re.findall(r"^## (tl_\w+)\(", HOOK_DOCS, re.M)
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    exported = {name for name, function in vars(hookspecs).items() if callable(function) and hasattr(function, marker)}
    assert set(hook_specs()) == exported, "every specification is in one of SPEC_MODULES"


def test_answer_hooks_are_exactly_the_firstresult_hooks():
    firstresult = {name for name, function in hook_specs().items()
                   if getattr(function, f"{hookspecs.PROJECT_NAME}_spec").get("firstresult")}
    assert firstresult == set(ANSWER_HOOKS)


def test_framework_steps_are_documented_as_such_and_typed():
    from tlcore.frameworks import STEPS

    for name, function in hook_specs().items():
        section = HOOK_DOCS.split(f"## {name}(", 1)[1].split("\n## ", 1)[0]
        assert ("framework step" in section) == (name in STEPS), name
        signature = inspect.signature(function)
        assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
        for argument in signature.parameters.values():
            assert argument.annotation is not inspect.Parameter.empty, f"{name}: {argument.name} has no type"


def test_the_framework_hook_lists_every_optional_key_a_framework_can_honour():
    from tlcore.frameworks import OPTIONAL_KEYS

    section = HOOK_DOCS[HOOK_DOCS.index("## tl_frameworks()"):HOOK_DOCS.index("- Returns:", HOOK_DOCS.index("## tl_frameworks()"))]
    listed = section[section.index("OPTIONAL_KEYS"):section.index("giving another one")]
    assert sorted(re.findall(r"`(\w+)`", listed)) == sorted(OPTIONAL_KEYS)


def test_every_hook_is_exercised_by_a_test():
    sources = "\n".join(path.read_text() for path in (REPO / "tests").glob("test_*.py") if path.name != "test_meta.py")
    untested = [name for name in hook_specs() if not re.search(rf"\b{name}\b", sources)]
    assert untested == []


def test_the_core_imports_no_framework_nor_the_built_in_plugins():
    import subprocess
    import sys

    modules = sorted(".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                     for path in (REPO / "tlcore").rglob("*.py"))
    probe = (
        f"import sys, {', '.join(modules)}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'torch', 'torchvision', 'tlplugins', 'numpy', 'PIL')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_plugin_modules_import_heavy_libraries_only_inside_hooks():
    for path in (REPO / "plugins").rglob("*.py"):
        top_level = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
        heavy = [line for line in top_level
                 if line.split()[1].split(".")[0] in ("tensorflow", "keras", "torch", "torchvision", "numpy", "PIL")]
        assert heavy == [], f"{path.relative_to(REPO)} imports at module level: {heavy}"


def test_the_plugin_guide_example_and_its_test_work(tmp_path, monkeypatch):
    """docs/writing-a-plugin.md stays true: its plugin and its test, taken from the page, pass."""
    plugin, test = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "writing-a-plugin.md").read_text(), re.S)[:2]
    (tmp_path / "tl_history_csv.py").write_text(plugin)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace = {}
    exec(compile(test, "writing-a-plugin.md", "exec"), namespace)
    work = tmp_path / "work"
    work.mkdir()
    namespace["test_history_is_written_at_the_end_of_the_run"](work)


def test_every_test_named_in_the_bad_input_list_exists():
    listed = re.findall(r"(test_\w+\.py)?::(test_\w+)|(test_\w+\.py)", (REPO / "docs" / "bad-inputs.md").read_text())
    sources = {path.name: path.read_text() for path in (REPO / "tests").glob("test_*.py")}
    for _, name, _ in listed:
        if name and not name.endswith("_"):
            assert any(f"def {name}" in text for text in sources.values()), f"docs/bad-inputs.md names {name}"
    for module in {m for m, _, _ in listed if m} | {m for _, _, m in listed if m}:
        assert module in sources, f"docs/bad-inputs.md names {module}"


def test_ci_runs_the_test_command_readme_gives():
    """A newcomer's test command and CI's are the same line."""
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^(\.venv/bin/pip install -e '[^']*' && \.venv/bin/python -m pytest)$", readme, re.M)
    assert len(commands) == 1, commands
    assert commands[0] in (REPO / ".ci" / "run").read_text().splitlines()
