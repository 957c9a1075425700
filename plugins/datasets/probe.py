"""Telling, from a file's first bytes, whether it is an image tl can train on.

Pure Python and cheap (a few small reads per file), so a dataset is checked in
well under a second per thousand images, before any framework is even imported.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

JPEG, PNG, GIF, BMP, WEBP = "JPEG", "PNG", "GIF", "BMP", "WebP"
TAIL_SEARCH = 64 * 1024


@dataclass(frozen=True)
class Probe:
    """What the first bytes say: ``format``, and ``problem`` if the file is unusable."""

    format: str | None = None
    problem: str | None = None


def probe(path: str | Path) -> Probe:
    if not os.path.isfile(path):  # a FIFO or device named .jpg would block or never end
        return Probe(problem="not a regular file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(32)
            if not head:
                return Probe(problem="empty file (0 bytes)")
            if head.startswith(b"\xff\xd8\xff"):
                return _probe_jpeg(handle)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return Probe(PNG) if _ends_with(handle, b"IEND\xaeB`\x82") else Probe(
                    PNG, problem="truncated PNG (no IEND chunk)")
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return Probe(GIF) if _ends_with(handle, b";") else Probe(GIF, problem="truncated GIF (no trailer)")
            if head.startswith(b"BM") and len(head) >= 26:
                (declared,) = struct.unpack("<I", head[2:6])
                handle.seek(0, 2)
                if handle.tell() < declared:
                    return Probe(BMP, problem=f"truncated BMP ({handle.tell()} of {declared} bytes)")
                return Probe(BMP)
            if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                return Probe(WEBP)
    except OSError as exc:
        return Probe(problem=f"cannot be read ({exc.strerror})")
    return Probe(problem="not an image (its content is not JPEG, PNG, GIF, BMP or WebP)")


def _has_end(handle: BinaryIO) -> bool:
    """Whether the image data that starts here ends with an end-of-image marker.

    Usually it is among the file's last bytes. Phones and cameras may append other
    data after the image (a motion photo's video, a depth map, a gain map), so
    when the tail has none, the image data itself is searched.
    """
    start = handle.tell()
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(max(start, size - TAIL_SEARCH))
    if b"\xff\xd9" in handle.read():
        return True
    handle.seek(start)
    previous = b""
    while True:
        chunk = handle.read(1 << 20)
        if not chunk:
            return False
        if b"\xff\xd9" in previous[-1:] + chunk:
            return True
        previous = chunk


def _ends_with(handle: BinaryIO, trailer: bytes, slack: int = 64) -> bool:
    """Whether ``trailer`` is among the last bytes (a few bytes of padding after it are common)."""
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(max(0, size - len(trailer) - slack))
    return trailer in handle.read()


def _probe_jpeg(handle: BinaryIO) -> Any:
    """Walk the JPEG markers up to the image data, and look for the end marker."""
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(max(0, size - TAIL_SEARCH))
    ends = b"\xff\xd9" in handle.read()
    handle.seek(2)
    damaged = Probe(JPEG, problem="damaged JPEG (bad marker structure)")
    truncated = damaged if ends else Probe(JPEG, problem="truncated JPEG (no end-of-image marker)")
    while True:
        byte = handle.read(1)
        if not byte:
            return truncated
        if byte != b"\xff":
            return damaged
        kind = handle.read(1)
        while kind == b"\xff":  # fill bytes before a marker are allowed
            kind = handle.read(1)
        if not kind:
            return truncated
        code = kind[0]
        if code == 0xDA:  # start of scan: the headers are over
            return Probe(JPEG) if ends or _has_end(handle) else truncated
        if code == 0x01 or 0xD0 <= code <= 0xD7:  # markers without a segment
            continue
        raw = handle.read(2)
        if len(raw) < 2:
            return truncated
        if struct.unpack(">H", raw)[0] < 2:
            return damaged
        length = struct.unpack(">H", raw)[0] - 2
        if len(handle.read(length)) < length:
            return truncated
