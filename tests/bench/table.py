"""Figures and the table they are printed in.

A figure is one measured value next to its target.  ``ratio`` is measured / limit for
absolute targets ("within 3 ms") and measured / reference for relative ones ("≤ 1.15 ×
the floor", the median of the ratios of runs made side by side), so a ratio at or under
the target's factor passes and the reader sees at a glance how much room is left.
Figures without a target are context (the floor itself, the C check_smtp) and say
"info".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple


class Figure(NamedTuple):
    part: str  # "1 start-up", "2 accuracy", ...
    name: str
    measured: str  # formatted, with unit
    target: str = ""
    ratio: float | None = None
    passed: bool | None = None  # None: no target (context) or not run
    note: str = ""  # "info", "pending: …"

    @property
    def result(self) -> str:
        if self.passed is None:
            return self.note or "info"
        return "PASS" if self.passed else "FAIL"


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def relative(
    part: str,
    name: str,
    values: Sequence[float],
    references: Sequence[float],
    factor: float,
    shown: Callable[[float], str],
    reference_name: str = "floor",
) -> Figure:
    """A figure whose target is ``factor`` × a reference measured in the same rounds.

    ``values[i]`` and ``references[i]`` were measured one right after the other, so the
    ratio is the median of the per-round ratios: a burst of load that slows one round
    slows both sides of that round's ratio and leaves the others alone.  The measured
    column shows the median value.
    """
    if len(values) != len(references) or not values:
        raise ValueError(f"{name}: {len(values)} values against {len(references)} references")
    ratio = median(v / r for v, r in zip(values, references))
    return Figure(
        part,
        name,
        shown(median(values)),
        f"≤ {factor:g} × {reference_name}",
        ratio,
        ratio <= factor,
    )


def paired_ratio(values: Sequence[float], references: Sequence[float]) -> float:
    """Median of per-round ratios, for figures without a target."""
    return median(v / r for v, r in zip(values, references))


def absolute(part: str, name: str, value: float, limit: float, unit_ms: bool = True) -> Figure:
    """A figure whose target is a fixed upper limit, given in seconds."""
    shown = f"{value * 1000:.2f} ms" if unit_ms else f"{value:.2f} s"
    target = f"< {limit * 1000:g} ms" if unit_ms else f"≤ {limit:g} s"
    return Figure(
        part, name, shown, target, value / limit, value < limit if unit_ms else value <= limit
    )


def render(figures: Sequence[Figure], header: Sequence[str] = ()) -> str:
    rows = [("part", "figure", "measured", "target", "ratio", "result")]
    for f in figures:
        ratio = "" if f.ratio is None else f"{f.ratio:.3f}"
        rows.append((f.part, f.name, f.measured, f.target, ratio, f.result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [*header]
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if i in (2, 4) and number else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
