"""The result record's keys, declared once: each key's name, type, unit and meaning, in the sections
docs/records.md shows, split by what they describe (identity: what was measured; realisation: how it ran;
measurements: what came out). bench.records validates records against them and writes the docs; a new field is one
`Key(...)` line in its section plus its producer. Nothing heavier than typing here (reports import it)."""

from __future__ import annotations

from bench.record_keys import identity, measurements, realisation
from bench.record_keys.key import SCALARS, SCENARIO, SCHEMA_VERSION, STATUS, Key

__all__ = ["FIELDS", "KEYS", "REQUIRED_KEYS", "SCALARS", "SCENARIO", "SCHEMA_VERSION", "STATUS", "Key"]

KEYS: list[Key] = [*identity.KEYS, *realisation.KEYS, *measurements.KEYS]
FIELDS: dict[str, Key] = {k.name: k for k in KEYS}
REQUIRED_KEYS: tuple[str, ...] = tuple(k.name for k in KEYS if k.required)
if len(FIELDS) != len(KEYS):  # a key declared twice would silently take the second declaration
    raise RuntimeError(f"bench/record_keys declares a key twice: {sorted({k.name for k in KEYS if [j.name for j in KEYS].count(k.name) > 1})}")
