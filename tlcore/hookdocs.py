"""The hook reference, ``docs/hooks.md``, made from the hook specifications' docstrings (:mod:`tlcore.hookspecs`).

The page's introduction is written by hand, above :data:`MARKER`; every hook's section below it is generated,
in the order a run calls the hooks. After changing a docstring::

    python -m tlcore.hookdocs docs/hooks.md

A test checks that the page is up to date.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from tlcore import hookspecs

MARKER = "<!-- The sections below are generated from tlcore/hookspecs/: python -m tlcore.hookdocs docs/hooks.md -->"


def hook_specs() -> dict[str, Callable[..., Any]]:
    """Every hook specification, by name, in the order a run calls them: module by module
    (:data:`tlcore.hookspecs.SPEC_MODULES`), each in the order it defines them."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    found: dict[str, Callable[..., Any]] = {}
    for module in hookspecs.SPEC_MODULES:
        specs = [function for function in vars(module).values() if callable(function) and hasattr(function, marker)]
        found.update((function.__name__, function) for function in sorted(specs, key=lambda f: f.__code__.co_firstlineno))
    return found


def reference() -> str:
    """Every hook's section: ``## name(arguments)`` and its docstring (Markdown)."""
    sections = []
    for name, function in hook_specs().items():
        arguments = ", ".join(inspect.signature(function).parameters)
        sections.append(f"## {name}({arguments})\n\n{inspect.getdoc(function)}\n")
    return "\n".join(sections)


def page(current: str) -> str:
    """``current`` (the page as it is) with everything after :data:`MARKER` made again."""
    if MARKER not in current:
        raise ValueError(f"the page has no line {MARKER!r}")
    return current.split(MARKER, 1)[0] + MARKER + "\n\n" + reference()


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print("usage: python -m tlcore.hookdocs docs/hooks.md", file=sys.stderr)
        return 2
    path = Path(arguments[0])
    path.write_text(page(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
