"""What tl measured of each named base model on the IMX500 (``bench/models.py`` writes ``measured.json``).

The framework packs attach it to their :class:`tlcore.base_models.BaseModel` s; ``tl models`` shows it and the
layer check (:mod:`tlplugins.imx500.layers`) refuses, before training, a base that does not convert or fit.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from tlcore.base_models import Imx500Status

MEASURED = Path(__file__).with_name("measured.json")


@functools.cache
def measurements() -> dict[str, Any]:
    """``{"framework/name": {...}}`` as ``bench/models.py`` wrote it; empty when there is no file."""
    try:
        return dict(json.loads(MEASURED.read_text()).get("bases", {}))
    except FileNotFoundError:
        return {}


def imx500_status(framework: str, name: str) -> Imx500Status | None:
    """The measured IMX500 status of a base, or None when it was not measured."""
    record = measurements().get(f"{framework}/{name}")
    if record is None or record.get("imx500") is None:
        return None
    return Imx500Status.from_dict(record["imx500"])
