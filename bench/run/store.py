"""The results store: one directory per run holding results.jsonl (a flat record per line, appended and
flushed as each cell finishes), env.json, the resolved config and run.json (status: running | complete |
incomplete | failed), and cells.done (the cells whose records are all written, for --resume).
Two runs never share a directory: a run holds an exclusive lock on it while it writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.errors import BenchError

RESULTS = "results.jsonl"
MANIFEST = "run.json"
DONE = "cells.done"
LOCK = ".lock"


@dataclass
class RunStore:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, output_dir: Path, name: str) -> "RunStore":
        """runs/<UTC timestamp>-<name>[-N]/, created exclusively so that concurrent runs never collide."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"cannot create output directory '{output_dir}': {exc.strerror}; choose another with --output-dir") from None
        if not os.access(output_dir, os.W_OK):
            raise BenchError(f"output directory '{output_dir}' is not writable; choose another with --output-dir")
        for attempt in range(1, 1000):
            path = output_dir / (f"{stamp}-{name}" if attempt == 1 else f"{stamp}-{name}-{attempt}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise BenchError(f"cannot create run directory '{path}': {exc.strerror}") from None
            store = cls(path)
            store.lock()
            store.set_status("running", started=now_utc())
            return store
        raise BenchError(f"too many runs named '{name}' in the same second in '{output_dir}'")

    @classmethod
    def open(cls, path: Path) -> "RunStore":
        if not (path / RESULTS).is_file() and not (path / MANIFEST).is_file():
            raise BenchError(f"'{path}' is not a run directory (no {RESULTS} or {MANIFEST})")
        return cls(path)

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path / RESULTS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, allow_nan=False, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def lock(self) -> None:
        """Hold this run directory for the life of the process; a second writer gets a clear error."""
        import fcntl

        handle = open(self.path / LOCK, "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise BenchError(f"run directory '{self.path}' is being written by another bench process") from None
        self._lock_handle = handle

    def unlock(self) -> None:
        handle = getattr(self, "_lock_handle", None)
        if handle is not None:
            handle.close()  # closing the file releases the flock
            self._lock_handle = None

    def done_cells(self) -> set[str]:
        path = self.path / DONE
        return set(path.read_text(encoding="utf-8").split()) if path.is_file() else set()

    def mark_done(self, cell_id: str) -> None:
        with open(self.path / DONE, "a", encoding="utf-8") as fh:
            fh.write(cell_id + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def drop_unfinished(self) -> int:
        """Before a resume: remove records of cells that were cut off (they will be measured again)."""
        done = self.done_cells()
        records = self.records()
        kept = [r for r in records if r.get("cell_id") in done]
        self.write_text(RESULTS, "".join(json.dumps(r, sort_keys=True, allow_nan=False, default=str) + "\n" for r in kept))
        return len(records) - len(kept)

    def records(self) -> list[dict[str, Any]]:
        path = self.path / RESULTS
        if not path.is_file():
            return []
        out = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                # A line cut by a crash mid-write: every complete line before it still counts.
                raise BenchError(f"{path}:{lineno}: not a JSON record (truncated by an interrupted run?)") from None
        return out

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(obj, indent=2, sort_keys=True, default=str))

    def write_text(self, name: str, text: str) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.path / name)

    def read_json(self, name: str) -> Any:
        path = self.path / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def manifest(self) -> dict[str, Any]:
        return self.read_json(MANIFEST) or {}

    def set_status(self, status: str, **fields: Any) -> None:
        # A reason belongs to the status it explains: a resumed run that completes is no longer "interrupted".
        previous = {k: v for k, v in self.manifest().items() if k != "reason"}
        manifest = {**previous, "run_id": self.run_id, "status": status, **fields}
        if status != "running":
            manifest["finished"] = now_utc()
        self.write_json(MANIFEST, manifest)


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
