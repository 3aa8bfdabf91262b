"""A run directory as readers see it: its records (results.jsonl, up to a last line an interrupted write cut off),
run.json, env.json and cells.done, the state a reader should show (a run whose writer died is interrupted), and
the one-line machine summary of env.json. Below both the harness (bench.run.store writes through this class) and
reports/, which read runs without importing the harness.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import jsonl
from bench.errors import BenchError

RESULTS = "results.jsonl"
MANIFEST = "run.json"
DONE = "cells.done"
LOCK = ".lock"


@dataclass
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        if path.is_file():
            hint = f"; pass the run directory: '{path.parent}'" if path.parent.joinpath(MANIFEST).is_file() else ""
            raise BenchError(f"'{path}' is a file, not a run directory{hint}")
        if not (path / RESULTS).is_file() and not (path / MANIFEST).is_file():
            raise BenchError(f"'{path}' is not a run directory (no {RESULTS} or {MANIFEST})")
        return cls(path)

    def read(self) -> tuple[list[dict[str, Any]], jsonl.CutLine | None]:
        """The records, and the last line if an interrupted write cut it (the records before it all count)."""
        path = self.path / RESULTS
        if path.exists() and not path.is_file():
            raise BenchError(f"'{path}' is not a file (a directory?); move it aside: the records of a run are that file")
        if not path.is_file():
            return [], None
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BenchError(f"cannot read {path}: {exc.strerror}") from None
        return jsonl.parse(data, path)

    def records(self) -> list[dict[str, Any]]:
        return self.read()[0]

    def done_cells(self) -> set[str]:
        path = self.path / DONE
        return set(path.read_text(encoding="utf-8").split()) if path.is_file() else set()

    def read_json(self, name: str) -> Any:
        path = self.path / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def manifest(self) -> dict[str, Any]:
        return self.read_json(MANIFEST) or {}

    def writer_alive(self) -> bool:
        """Does a process hold this run's lock? (The kernel drops a flock when its holder dies, even by kill -9.)"""
        import fcntl

        try:
            handle = open(self.path / LOCK, "rb")
        except OSError:
            return _pid_alive((self.manifest().get("writer") or {}))
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False


def _pid_alive(writer: dict[str, Any]) -> bool:
    if not writer or writer.get("host") != socket.gethostname():
        return bool(writer)  # another machine's writer cannot be checked from here: assume it lives
    try:
        os.kill(int(writer["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


def reader_state(store: RunDir) -> dict[str, Any]:
    """run.json as a reader should see it: a run whose writer is gone is interrupted, not running, and a run
    whose last record was cut off is incomplete, whatever run.json says."""
    try:
        manifest = store.manifest()
    except ValueError:
        manifest = {}
    _, cut = store.read()
    if manifest.get("status") == "running" and not store.writer_alive():
        writer = manifest.get("writer") or {}
        who = f"pid {writer.get('pid')} on {writer.get('host')}" if writer else "its writer"
        manifest |= {"status": "interrupted",
                     "reason": f"{who} stopped without finishing (killed or crashed); "
                               f"`bench run --resume {store.path}` finishes it"}
    if cut is not None and manifest.get("status") != "running":
        manifest |= {"status": "incomplete", "reason": f"{cut.describe(store.path / RESULTS)}; the records before "
                                                       f"it are shown; `bench run --resume {store.path}` measures that cell again"}
    return manifest



def short_summary(env: dict[str, Any]) -> str:
    """One line for report headers: CPU, GPUs, torch, ONNX Runtime and git state."""
    physical, logical = env.get("cpu_cores_physical"), env.get("cpu_cores_logical")
    cores = f"{physical or logical} cores" if physical or logical else "cores unknown"
    if physical and logical and logical != physical:
        cores += f", {logical} threads"
    gpus = Counter(gpu["name"] for gpu in env.get("gpus") or [])
    gpu = ", ".join(f"{n}x {name}" for name, n in gpus.items()) or "no GPU"
    if env.get("nvidia_driver_version"):
        gpu += f" (driver {env['nvidia_driver_version']})"
    ort = f"ORT {env.get('onnxruntime_version') or 'n/a'}"
    if env.get("onnxruntime_providers"):
        ort += f" [{', '.join(env['onnxruntime_providers'])}]"
    commit, dirty = env.get("git_commit"), env.get("git_dirty")
    git = f"git {commit[:7]}" if commit else ("git (no commit)" if dirty is not None else "no git")
    if dirty:
        git += " (dirty)"
    cpu = f"{env.get('cpu_model') or 'unknown CPU'} ({cores})"
    return " | ".join([cpu, gpu, f"torch {env.get('torch_version') or 'n/a'}", ort, git])
