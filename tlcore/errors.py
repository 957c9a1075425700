"""Errors a user can act on.

A ``TLError`` carries one line that says what is wrong and what to do; the CLI
prints it without a traceback and exits with ``exit_code``.
"""


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class TLError(Exception):
    """A problem the user can fix; ``str(error)`` is the one-line message."""

    exit_code = 1

    def __str__(self) -> str:
        return one_line(super().__str__())


class ConfigError(TLError):
    """The configuration file or one of its values is wrong."""

    exit_code = 2


class DatasetError(TLError):
    """The dataset folders or the labels file are wrong."""

    exit_code = 2


class ModelError(TLError):
    """The base model cannot be loaded or used."""


class OutputError(TLError):
    """An output location cannot be written."""


class PluginError(TLError):
    """A plugin failed to load, raised an error, or returned something unusable."""
