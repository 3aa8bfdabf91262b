"""Reading a run directory for rendering: its records, env.json and run.json, with the schema checked.

Reports read records written by any version of the harness this code knows; a record from a newer harness
is refused with a clear error instead of being rendered wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.records import SCHEMA_VERSION
from bench.rundir import RunDir, reader_state

KNOWN_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})


@dataclass(frozen=True)
class Run:
    path: Path
    records: list[dict[str, Any]]
    env: dict[str, Any] | None
    manifest: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)


def load_run(path: Path) -> Run:
    store = RunDir.open(path)
    records = store.records()
    check_schema(records, path)
    # The state a reader should see: a run whose writer died is interrupted, one whose last line was cut incomplete.
    return Run(path, records, _optional_json(store, "env.json"), reader_state(store))


def check_schema(records: list[dict[str, Any]], where: Path) -> None:
    """Every record's schema_version must be one this code renders; a record without one predates
    versioning only in hand-made files, and is read as the current version."""
    for lineno, record in enumerate(records, 1):
        version = record.get("schema_version", SCHEMA_VERSION)
        if version in KNOWN_SCHEMA_VERSIONS:
            continue
        known = ", ".join(str(v) for v in sorted(KNOWN_SCHEMA_VERSIONS))
        if isinstance(version, int) and version > max(KNOWN_SCHEMA_VERSIONS):
            raise BenchError(f"{where / 'results.jsonl'}:{lineno}: schema_version {version} is newer than this "
                             f"xglm-bench reads (known: {known}); upgrade xglm-bench to render or compare this run")
        raise BenchError(f"{where / 'results.jsonl'}:{lineno}: unknown schema_version {version!r} (known: {known})")


def _optional_json(store: RunDir, name: str) -> Any:
    """env.json or run.json; a damaged one is treated as absent, since the records alone can be rendered."""
    try:
        return store.read_json(name)
    except (ValueError, OSError):
        return None
