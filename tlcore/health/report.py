"""The data check's findings: one warning line per kind, ``data_health.csv`` and ``data_health.json``."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tlcore.outputs import _umask, write_json_atomic
from tlcore.text import neutralise

SPLITS = ("training", "validation")

KINDS = ("duplicate_across_splits", "duplicate_conflicting_labels", "duplicate_within_split", "likely_mislabelled",
         "few_images", "imbalance")
"""The kinds of finding, in the order they are reported (the most harmful first)."""

HEALTH_CSV = "data_health.csv"
HEALTH_JSON = "data_health.json"
CSV_COLUMNS = ("kind", "path", "other_path", "split", "other_split", "label", "other_label", "score", "detail")

@dataclass(frozen=True)
class Finding:
    """One thing worth a look: ``kind`` (one of :data:`KINDS`), the image files involved (``paths``: one or two;
    none for a class finding), their ``splits`` and class names (``labels``; for a class finding the class, or
    the largest and smallest class), a short human ``detail``, and a ``score``: the cosine similarity for a
    duplicate, the out-of-fold margin (other class's probability - given class's) for a likely wrong label,
    the number of training images for a thin class, the largest / smallest ratio for an imbalance."""

    kind: str
    paths: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    detail: str = ""
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "paths": list(self.paths), "splits": list(self.splits),
                "labels": list(self.labels), "detail": self.detail, "score": round(float(self.score), 6)}

    def row(self) -> list[str]:
        """The finding's row of data_health.csv (:data:`CSV_COLUMNS`), neutralised for spreadsheets."""
        def at(values: tuple[str, ...], index: int) -> str:
            return values[index] if len(values) > index else ""

        cells = [self.kind, at(self.paths, 0), at(self.paths, 1), at(self.splits, 0), at(self.splits, 1),
                 at(self.labels, 0), at(self.labels, 1), f"{self.score:.4f}", self.detail]
        return [neutralise(cell) for cell in cells]


@dataclass
class HealthReport:
    """The findings of a data check and what was checked (``checked``: images per split, pairs verified, seconds,
    the settings)."""

    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]

    def warning_lines(self) -> list[str]:
        """One line per kind of finding, with its count, most harmful first; none for a clean dataset."""
        where = f"({HEALTH_CSV} lists them)"
        lines = []
        across = self.of_kind("duplicate_across_splits")
        if across:
            count = _validation_images_with_training_twin(self.findings)
            lines.append(f"data check: {count} validation image{_s(count)} {_are(count)} also in training (identical "
                         f"or near-identical), which inflates validation accuracy {where}")
        conflicting = self.of_kind("duplicate_conflicting_labels")
        if conflicting:
            count = len(conflicting)
            lines.append(f"data check: {count} pair{_s(count)} of identical or near-identical images carr{_y(count)} "
                         f"different labels {where}")
        within = self.of_kind("duplicate_within_split")
        if within:
            count = len(within)
            lines.append(f"data check: {count} image{_s(count)} {_are(count)} a duplicate of another of the same class "
                         f"and split {where}")
        wrong = self.of_kind("likely_mislabelled")
        if wrong:
            count = len(wrong)
            lines.append(f"data check: {count} training image{_s(count)} may be labelled wrong: the model, trained "
                         f"without {'them' if count != 1 else 'it'}, confidently predicts another class {where}")
        few = self.of_kind("few_images")
        if few:
            names = ", ".join(finding.labels[0] for finding in few[:5]) + (", ..." if len(few) > 5 else "")
            lines.append(f"data check: {len(few)} class{'es' if len(few) != 1 else ''} {_have(len(few))} too few "
                         f"images to learn or measure well ({names}) {where}")
        for finding in self.of_kind("imbalance"):
            lines.append(f"data check: the classes are imbalanced: {finding.detail}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [finding.to_dict() for finding in self.findings], "checked": self.checked}

    def write(self, folder: Path) -> list[str]:
        """Write ``data_health.csv`` (one row per finding, :data:`CSV_COLUMNS`) and ``data_health.json`` (the
        findings and ``checked``) into ``folder``, each via a temporary file and a rename; return their names."""
        folder = Path(folder)
        buffer = io.StringIO()
        writer = csv.writer(buffer)  # "\r\n" ends rows, so a cell with either character is quoted
        writer.writerow(CSV_COLUMNS)
        writer.writerows(finding.row() for finding in self.findings)
        handle, temporary = tempfile.mkstemp(prefix=f".{HEALTH_CSV}.tl-partial-", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(buffer.getvalue())
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, folder / HEALTH_CSV)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        write_json_atomic(folder / HEALTH_JSON, self.to_dict())
        return [HEALTH_CSV, HEALTH_JSON]


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _are(count: int) -> str:
    return "is" if count == 1 else "are"


def _have(count: int) -> str:
    return "has" if count == 1 else "have"


def _y(count: int) -> str:
    return "ies" if count == 1 else "y"


def duplicate_groups(findings: Iterable[Finding], by_split: bool = False) -> dict[Any, Any]:
    """Each image that duplicate findings join -> its group's representative: duplicate pairs are reported as a
    spanning tree of each group, so two images may meet only through others. An image is its path, or with
    ``by_split`` its ``(split, path)``."""
    parent: dict[Any, Any] = {}

    def root(node: Any) -> Any:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for finding in findings:
        if finding.kind.startswith("duplicate_") and len(finding.paths) == 2:
            a, b = (zip(finding.splits, finding.paths, strict=True) if by_split else finding.paths)
            parent[root(a)] = root(b)
    return {node: root(node) for node in list(parent)}


def _validation_images_with_training_twin(findings: Iterable[Finding]) -> int:
    """The validation images in a group of duplicates that holds a training image."""
    groups = duplicate_groups(findings, by_split=True)
    with_training = {group for (split, _), group in groups.items() if split == "training"}
    return sum(1 for (split, _), group in groups.items() if split == "validation" and group in with_training)
