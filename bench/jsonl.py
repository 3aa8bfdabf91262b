"""results.jsonl line by line: a record is written as one JSON line with every NaN or infinity as null (and a note
saying which fields were not numbers), and read back up to a last line that an interrupted write cut off.

A NaN in one record (a diverged training loss, an fp16 overflow in a logit difference, a zero median) must not
abort a sweep, and JSON has no NaN: strict readers (jq, JavaScript, most databases) reject the file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError

NON_FINITE_NOTE = "non_finite_note"
_CELL_ID = re.compile(rb'"cell_id": "((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class CutLine:
    """The last line of a results file that an interrupted write (a crash, a power cut, a full disk) left unparsable."""

    lineno: int
    offset: int  # byte offset where the cut line starts: the file is whole up to here
    size: int  # bytes of the cut line
    cell_id: str | None  # the cell it belonged to, when the fragment still names it

    def describe(self, path: Path) -> str:
        return f"{path}: line {self.lineno} was cut off by an interrupted write ({self.size} bytes)"


def finite(record: dict[str, Any]) -> dict[str, Any]:
    """The record with NaN and infinities as None; a note names each field that held one."""
    found: list[str] = []
    clean = {key: _finite(value, key, found) for key, value in record.items()}
    if found:
        note = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        clean[NON_FINITE_NOTE] = f"not a number, written as null: {note}"
    return clean


def _finite(value: Any, where: str, found: list[str]) -> Any:
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy or torch scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        found.append(f"{where}={value}")
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{where}.{k}", found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


def dumps(record: dict[str, Any]) -> str:
    """One record as one line of strict JSON (no NaN, sorted keys)."""
    return json.dumps(finite(record), sort_keys=True, allow_nan=False, default=str) + "\n"


def parse(data: bytes, path: Path) -> tuple[list[dict[str, Any]], CutLine | None]:
    """Every record of a results file, and the last line if it was cut. A malformed line anywhere but last is an
    error naming it: that is damage, not an interrupted append."""
    lines = data.split(b"\n")
    last = max((i for i, line in enumerate(lines) if line.strip(b" \t\r\x00")), default=-1)
    records, offset = [], 0
    for index, line in enumerate(lines):
        start, offset = offset, offset + len(line) + 1
        if not line.strip(b" \t\r\x00"):
            continue
        try:
            records.append(finite(json.loads(line)))
            continue
        except (ValueError, UnicodeDecodeError):  # json.JSONDecodeError is a ValueError
            if index != last:
                raise BenchError(f"{path}:{index + 1}: not a JSON record (a damaged line in the middle of the file; "
                                 "an interrupted write only ever cuts the last line)") from None
        found = _CELL_ID.search(line)
        cell_id = json.loads(b'"' + found.group(1) + b'"') if found else None
        return records, CutLine(index + 1, start, len(line), cell_id)
    return records, None
