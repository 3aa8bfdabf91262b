"""The export cache: each ONNX Runtime export kept once, in <cache>/exports/<key>/, checked before every use and
shared by runs, cell processes and the Ray groups of one machine, so that run directories hold no exports.

An entry is a directory as bench.backends.onnxruntime.export writes one; its key (bench.backends.onnxruntime.export_key) is the hash
of everything its files depend on. It is written into a temporary directory beside the cache and renamed into place
when complete, so a reader never sees half an export. A lock file per key makes a second writer of the same key
wait and then reuse the first one's export; where the filesystem has no locks (some network filesystems) the rename
still decides: the loser drops its copy and uses the winner's. Every use checks each file's size and sha256 against
export.json (about 1.4 s per GB on a 2-core CPU; an export of the same model takes far longer): a damaged entry is
removed and exported again, and the cell's records say so (`export_cache_note`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.variants.artifacts import remove, sha256
from bench.measure.timing import stopwatch

EXPORTS = "exports"
MANIFEST = "export.json"  # written last by bench.backends.onnxruntime.export.export_for_ort
_TMP, _LOCK = ".tmp-", ".lock"


@dataclass(frozen=True)
class CacheUse:
    """Where a cell's export came from: `hit` when it was found in the cache and checked, not exported."""

    directory: Path
    key: str
    hit: bool
    seconds: float  # finding and checking the entry (a hit), or storing it (a miss); the export's own time apart
    note: str | None = None  # a damaged entry that was exported again, or a concurrent writer's export reused

    def fields(self) -> dict[str, object]:
        """What every record of the cell carries about its export."""
        out = {"export_cache_key": self.key, "export_dir": str(self.directory), "export_cache_hit": self.hit,
               "export_cache_s": self.seconds}
        return out | ({"export_cache_note": self.note} if self.note else {})


def cached_export(cache_dir: Path, key: str, make: Callable[[Path], None]) -> CacheUse:
    """The checked entry of `key`, made by `make(directory)` (which writes an export there, export.json last) when
    it is missing or damaged."""
    root = cache_dir / EXPORTS
    root.mkdir(parents=True, exist_ok=True)
    path, note = root / key, None
    with _locked(root / f".{key}{_LOCK}"):  # a second writer of this key waits here, then finds the first one's
        with stopwatch() as lookup:
            problem = export_problem(path) if path.is_dir() else None
        if path.is_dir() and problem is None:
            return CacheUse(path, key, True, lookup.seconds)
        if problem is not None:
            note = f"the cached export was damaged ({problem}); exported again"
            remove(path)
        tmp = root / f".{key}{_TMP}{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            make(tmp)
            with stopwatch() as store:
                note = _publish(tmp, path) or note
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed export or a disk that filled up leaves nothing behind
    return CacheUse(path, key, False, lookup.seconds + store.seconds, note)


def _publish(tmp: Path, path: Path) -> str | None:
    """Rename the finished export into place; when another writer got there first, keep its export if it is sound."""
    for _ in range(2):
        try:
            tmp.rename(path)
            return None
        except OSError:
            if not path.exists():
                raise
            if export_problem(path) is None:
                return "another process stored this export meanwhile; its copy is used"
            remove(path)
    raise OSError(f"could not store the export in {path}")


def export_problem(path: Path) -> str | None:
    """What is wrong with a cached export (None: every file as export.json recorded it, key included)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"{MANIFEST} unreadable ({exc.__class__.__name__}): an interrupted export?"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not files:
        return "saved without recorded sizes and hashes"
    if manifest.get("key") != path.name:
        return f"its {MANIFEST} is for key {manifest.get('key')!r}, not {path.name!r}"
    for name, want in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != want["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, {want['bytes']} were saved"
        if sha256(file) != want["sha256"]:
            return f"{name} does not match the sha256 recorded when it was saved"
    return None


def verify_exports(cache_dir: Path) -> list[tuple[Path, str | None]]:
    """Every cached export with its problem (None: sound); leftovers of interrupted exports count as damaged."""
    root = cache_dir / EXPORTS
    out: list[tuple[Path, str | None]] = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name.endswith(_LOCK):
            continue
        if path.name.startswith(".") and _TMP in path.name:
            out.append((path, "the leftover of an interrupted export"))
        else:
            out.append((path, export_problem(path) if path.is_dir() else "not an export directory"))
    return out


def keep(source: Path, destination: Path) -> int:
    """The files of a cached export into `destination` (a run's exports/): hard links where the filesystem allows,
    copies elsewhere; returns the bytes that were copied (0 when every file was linked)."""
    destination.mkdir(parents=True, exist_ok=True)
    copied = 0
    for file in sorted(source.iterdir()):
        if not file.is_file():
            continue
        target = destination / file.name
        target.unlink(missing_ok=True)
        try:
            os.link(file, target)
        except OSError:  # another filesystem, or one without hard links
            shutil.copy2(file, target)
            copied += file.stat().st_size
    return copied


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive lock on one key, across processes (flock); without locking support, none (the rename decides)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:  # e.g. ENOLCK on a network filesystem
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
