"""Text from the dataset (class names, file names) made safe where it lands: on a terminal, where control
characters could retitle or clear it, and in CSV files, where a spreadsheet would run a cell as a formula.
``--json`` output and the JSON files keep the text exactly as it is."""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet takes for the start of a formula (OWASP's list for CSV injection)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters but the newline and the tab: C0 (the escape character among them), DEL and C1."""

LONGEST_WORD = 300
"""Characters of one name (a run without spaces) shown in a message; longer ones are shortened in the middle."""
_LONG_WORD = re.compile(r"\S{%d,}" % (LONGEST_WORD + 1))


def neutralise(cell: object) -> str:
    """``cell`` as text, with a leading quote when a spreadsheet would take it for a formula (it starts with
    = + - @, a tab or a carriage return): a file name like ``=HYPERLINK(...)`` stays text in the CSV."""
    text = str(cell)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def for_terminal(text: str) -> str:
    """``text`` with its control characters shown escaped (``\\x1b``), so a class or file name cannot move the
    cursor, clear the screen or set the window's title, and names longer than :data:`LONGEST_WORD` characters
    shortened in the middle."""
    text = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
    return _LONG_WORD.sub(lambda match: shorten(match.group()), text)


def shorten(name: str, limit: int = LONGEST_WORD) -> str:
    """``name`` when it has at most ``limit`` characters, else its start and end around an ellipsis and its
    length."""
    if len(name) <= limit:
        return name
    keep = (limit - 24) // 2
    return f"{name[:keep]}…{name[-keep:]} ({len(name)} characters)"
