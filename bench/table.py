"""The benchmark's rows and tables: each figure with tl's value, the reference's, and the issue's goal if any."""

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    """One figure. ``versus`` compares tl with the reference: ``"ratio"`` (tl / reference),
    ``"points"`` (tl - reference, in percentage points: accuracies) or ``None`` (no comparison: the two
    columns are not the same quantity of two programs). ``goal`` says the issue's goal in words and
    ``check(row)`` whether it is met."""

    figure: str
    tl: float
    reference: float | None
    unit: str = ""
    better: str = "lower"
    note: str | None = None
    versus: str | None = "ratio"
    goal: str = ""
    check: Callable[["Row"], bool] | None = None

    @property
    def comparison(self) -> float | None:
        if self.versus is None or self.reference is None:
            return None
        if self.versus == "points":
            return 100 * (self.tl - self.reference)
        return self.tl / self.reference if self.reference else math.nan

    def comparison_text(self) -> str:
        value = self.comparison
        if value is None:
            return ""
        return f"{value:+.1f} pts" if self.versus == "points" else f"{value:.3f}"

    @property
    def met(self) -> str:
        if self.check is None:
            return ""
        return "yes" if self.check(self) else "no"


def number(value, width=10, digits=2):
    return f"{'':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def print_table(title, rows):
    """A framework's rows with what the machine did meanwhile (``note``)."""
    print()
    print(title)
    print(f"{'figure':<66} {'tl':>10} {'reference':>10} {'unit':<6} {'vs':>9}")
    for row in rows:
        digits = 3 if row.unit in ("", "x") else 2
        print(f"{row.figure:<66} {number(row.tl, digits=digits)} {number(row.reference, digits=digits)} "
              f"{row.unit:<6} {row.comparison_text():>9}  ({row.better} is better)")
        if row.note:
            print(f"  [{row.note}]")


def print_summary(rows):
    """The figures the issue sets goals for: tl, reference, ratio or difference, goal, met."""
    print()
    print("Summary")
    rows = [row for row in rows if row.goal]
    if not rows:
        print("(none of the figures measured has a goal)")
        return
    print(f"{'figure':<66} {'tl':>9} {'reference':>9} {'vs':>9}  {'goal':<30} met")
    for row in rows:
        digits = 3 if row.unit in ("", "x") else 2
        print(f"{row.figure:<66} {number(row.tl, 9, digits)} {number(row.reference, 9, digits)} "
              f"{row.comparison_text():>9}  {row.goal:<30} {row.met}")
