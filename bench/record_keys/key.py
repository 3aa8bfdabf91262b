"""What a record key is: its name, type, unit and meaning, and the section docs/records.md shows it in; the
helpers the sections use, and the record's version and status types. Nothing heavier than typing (reports import it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Bump only when a key's meaning changes (reports refuse versions they do not know); adding a key does not.
SCHEMA_VERSION = 1

SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class Key:
    name: str
    type: Any  # a Python type as pydantic reads it: float, int, str, bool, list[int], dict[str, float], Literal[...]
    unit: str  # "" when the value has none (a name, a count of things, a flag)
    doc: str
    required: bool = False
    section: str = ""


def section(title: str, *keys: Key) -> list[Key]:
    return [Key(k.name, k.type, k.unit, k.doc, k.required, title) for k in keys]


def paired(name: str, doc: str, required: bool = False) -> list[Key]:
    """A ratio paired round by round and the keys every such ratio carries (bench.run.records.paired_fields)."""
    return [
        Key(name, float, "ratio", doc, required),
        Key(f"{name}_ci95_low", float, "ratio", f"lower bound of {name}'s interval (at least 95 %)"),
        Key(f"{name}_ci95_high", float, "ratio", f"upper bound of {name}'s interval (at least 95 %)"),
        Key(f"{name}_ci_level", float, "probability", f"exact coverage of {name}'s interval (marginal: this ratio alone)"),
        Key(f"{name}_p_value", float, "probability", f"two-sided exact sign test of {name} == 1.0 over rounds (Holm in the Findings)"),
        Key(f"{name}_mde_pct", float, "%", f"smallest effect {name} could have shown at its round count (null below 6 rounds)"),
        Key(f"{name}_note", str, "", f"why {name} is null (its reference was not paired)"),
    ]


STATUS = Literal["ok", "failed", "skipped"]
SCENARIO = Literal["latency", "throughput", "memory", "accuracy"]

