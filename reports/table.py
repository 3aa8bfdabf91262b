"""Tables as plain data, so that each view is built once and rendered three ways (Rich, Markdown, HTML).

A cell holds its main text, an optional secondary text (a confidence interval, a ± std, a speedup) that Rich
puts on a second line and the files put beside it, and a tone. Tones mark better or worse only; the text
itself always carries the meaning (a "!" or a sign), so a report stays readable in black and white.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Tone = Literal["better", "worse"] | None
MISSING = "-"


@dataclass(frozen=True)
class Cell:
    text: str
    sub: str = ""
    tone: Tone = None


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool = True  # right-aligned; labels (variant, backend ...) are left-aligned


@dataclass
class TableData:
    key: str  # a stable id: the HTML anchor, and what tests look tables up by
    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)

    def column(self, name: str) -> list[Cell]:
        index = [c.name for c in self.columns].index(name)
        return [row[index] for row in self.rows]


def build_table(key: str, title: str, columns: list[Column], rows: Iterable[dict[str, Cell]],
                optional: Iterable[str] = (), notes: Iterable[str] = (),
                constant: Iterable[str] = ("task", "dtype")) -> TableData:
    """A table from rows keyed by column name. Optional columns with nothing in any row are left out, so a CPU
    run is not padded with empty GPU-only columns; a `constant` column with one value in every row moves into
    the title, which keeps wide tables inside 160 terminal columns."""
    rows = list(rows)
    drop = {name for name in optional if all(row.get(name, EMPTY).text == MISSING for row in rows)}
    for name in constant:
        values = {row[name].text for row in rows if name in row}
        if len(values) == 1 and len(rows) > 1:
            drop.add(name)
            value = values.pop()
            title += "" if value == MISSING else f" · {name} {value}"
    kept = [c for c in columns if c.name not in drop]
    return TableData(key, title, kept, [[row.get(c.name, EMPTY) for c in kept] for row in rows], list(notes))


def _missing(value: float | None) -> bool:
    """None, NaN or an infinity: shown as '-', never as 'nan' beside a finite interval."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def label(value: object) -> Cell:
    return Cell(MISSING if value is None else str(value))


def num(value: float | None, spec: str = ".2f", suffix: str = "", sub: str = "", tone: Tone = None) -> Cell:
    if value is None:
        return Cell(MISSING, sub, tone)
    return Cell(MISSING) if _missing(value) else Cell(format(value, spec) + suffix, sub, tone)


def fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return MISSING if _missing(value) else format(value, spec) + suffix


def share(value: float | None) -> str:
    """A fraction as a percentage with the digits that matter: 100%, 12.5%, 0.14%."""
    if _missing(value):
        return MISSING
    pct = value * 100
    return f"{pct:.0f}%" if pct >= 10 or pct == 0 else f"{pct:.1f}%" if pct >= 1 else f"{pct:.2f}%"


def interval(low: float | None, high: float | None, spec: str = ".2f") -> str:
    """'55.05–55.75': a CI as compact as a column under its value allows."""
    return "" if _missing(low) or _missing(high) else f"{low:{spec}}–{high:{spec}}"


EMPTY = Cell(MISSING)
