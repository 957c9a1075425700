"""Reading a dataset listed in a file: the rows of a CSV or JSON Lines file, with one-line errors.

The listing loader (``tlplugins.datasets.listed``) and ``tl init LISTING`` (:mod:`tlcore.init`) read listings
this way.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from tlcore.errors import DatasetError

MAX_LIST_BYTES = 1 << 30

LISTS = {".csv": "csv", ".jsonl": "jsonl"}
"""The file suffixes of a listed dataset, and the format each one is."""


def rows(path: Path, kind: str, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row number, {column: value})`` of each row of a listing (numbered as an editor shows them: the CSV
    header is line 1); the columns ``columns[:2]`` (path, label) must exist."""
    if path.is_symlink():
        raise DatasetError(f"{path} is a symbolic link; symbolic links are not allowed, give the real file")
    if not path.is_file():
        raise DatasetError(f"{path} is not a file; give the {kind.upper()} file that lists the images")
    if path.stat().st_size > MAX_LIST_BYTES:
        raise DatasetError(f"{path} is larger than 1 GiB; split the listing")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            if kind == "csv":
                reader = csv.DictReader(handle)
                header = reader.fieldnames or []
                missing = [column for column in columns[:2] if column not in header]
                if missing:
                    raise DatasetError(
                        f'{path} has no column "{missing[0]}" (its columns: {", ".join(header) or "none"}); name the '
                        'columns in its first line, or set "path_column" and "label_column" to the names it uses')
                for row in reader:
                    if None in row:
                        raise DatasetError(f"{path} line {reader.line_num}: more values than the {len(header)} "
                                           "columns of the first line; quote values that hold a comma")
                    yield reader.line_num, row
                return
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise DatasetError(f"{path} line {number} is not JSON ({exc}); each line holds one object, "
                                       'e.g. {"path": "images/1.jpg", "label": "cat"}') from None
                if not isinstance(record, dict):
                    raise DatasetError(f"{path} line {number} holds {type(record).__name__}, not an object")
                for column in columns[:2]:
                    if column not in record:
                        raise DatasetError(f'{path} line {number} has no "{column}"; give every line its '
                                           f'"{columns[0]}" and "{columns[1]}", or set "path_column" and '
                                           '"label_column"')
                yield number, record
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                           "save it as UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from None
