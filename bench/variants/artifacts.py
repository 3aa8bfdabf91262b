"""Artifacts: a trained variant as a directory (safetensors + tokenizer + JSON metadata) in a cache keyed by
a hash of its recipe, so a second run with the same recipe loads instead of training again.

Loading never runs code from an artifact: safetensors and JSON only. meta.json records every file's size and
sha256 at save; a cached artifact is checked against them before it is used, and a damaged one (a truncated
safetensors file, a disk error) is rebuilt instead of failing every later run the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.errors import BenchError

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
# Everything bench keeps in its cache directory: trained variants, ONNX exports (bench.backends.onnxruntime.export_cache),
# artifacts a Ray node received from another, trained tokenizers, calibrated device peaks.
CACHE_PARTS = ("artifacts", "exports", "artifacts-received", "tokenizers", "calibration")
UNVERIFIED = "unverified"  # the start of the problem of an artifact saved before sizes and hashes were recorded


def default_cache_dir(configured: str | None = None) -> Path:
    return Path(configured or os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "xglm-bench").expanduser()


def recipe_key(recipe: dict[str, Any]) -> str:
    """Stable hash of everything that determines the weights (canonical JSON)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    path: Path
    meta: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> "Artifact":
        try:
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchError(f"'{path}' is not a readable artifact ({META_FILE}: {exc})") from None
        if not (path / MODEL_FILE).is_file():
            raise BenchError(f"artifact '{path}' has no {MODEL_FILE}")
        return cls(path, meta)

    @property
    def key(self) -> str:
        return self.meta["key"]

    def disk_bytes(self) -> int:
        return (self.path / MODEL_FILE).stat().st_size

    def problem(self, hashes: bool = True) -> str | None:
        """What is wrong with the files (None: as saved). Sizes and the safetensors header are cheap; hashes read
        every byte (about 1.4 s per GB on a 2-core CPU)."""
        damaged = safetensors_problem(self.path / MODEL_FILE)
        files = self.meta.get("files")
        if damaged or not files:
            return damaged or f"{UNVERIFIED}: saved without recorded sizes and hashes"
        for name, want in files.items():
            path = self.path / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != want["bytes"]:
                return f"{name} has {path.stat().st_size} bytes, {want['bytes']} were saved"
            if hashes and sha256(path) != want["sha256"]:
                return f"{name} does not match the sha256 recorded when it was saved"
        return None

    def load_model(self):
        """Rebuild the classifier from JSON metadata and load the safetensors weights (per architecture kind)."""
        from bench.variants.registry import load_artifact_model

        problem = self.problem(hashes=False)
        if problem and not problem.startswith(UNVERIFIED):
            raise BenchError(f"artifact '{self.path}' is damaged ({problem}); `bench cache verify --remove-damaged` "
                             "removes it and the next run rebuilds it")
        return load_artifact_model(self.path / MODEL_FILE, self.meta["architecture"])

    def load_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.path)


def lookup(cache_dir: Path, recipe: dict[str, Any], note: Callable[[str], None] | None = None) -> Artifact | None:
    """The cached artifact of this recipe, checked against what was saved; a damaged one is removed (and `note`
    says so), so that it is built again."""
    path = artifact_path(cache_dir, recipe)
    if not path.is_dir():
        return None
    try:
        artifact = Artifact.open(path)
        problem = artifact.problem()
    except BenchError as exc:
        artifact, problem = None, str(exc)
    if artifact is not None and (problem is None or problem.startswith(UNVERIFIED)):
        return artifact
    if note is not None:
        note(f"cached artifact {path} is damaged ({problem}); building it again")
    remove(path)
    return None


def artifact_path(cache_dir: Path, recipe: dict[str, Any]) -> Path:
    return cache_dir / "artifacts" / f"{recipe['variant']}-{recipe['task']}-{recipe_key(recipe)}"


def save(cache_dir: Path, recipe: dict[str, Any], model, tokenizer, meta: dict[str, Any], state_dict=None) -> Artifact:
    """Write into a temporary directory, then rename: an interrupted save never looks like an artifact.

    state_dict: the tensors to keep when a method stores less than the whole model (a prefix and a head).
    """
    from safetensors.torch import save_file, save_model

    path = artifact_path(cache_dir, recipe)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        if state_dict is None:
            save_model(model, str(tmp / MODEL_FILE))
        else:
            save_file({k: t.contiguous() for k, t in state_dict.items()}, str(tmp / MODEL_FILE))
        tokenizer.save_pretrained(tmp)
        files = {f.name: {"bytes": f.stat().st_size, "sha256": sha256(f)} for f in sorted(tmp.iterdir()) if f.is_file()}
        full_meta = {"key": recipe_key(recipe), "recipe": recipe, "files": files, **meta}
        (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2, sort_keys=True))
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a disk that filled up keeps no half-written artifact
        raise
    return Artifact(path, full_meta)


def verify_cache(cache_dir: Path) -> list[tuple[Path, str | None]]:
    """Every artifact in the cache with its problem (None: as saved); leftovers of interrupted saves count as
    damaged."""
    root = cache_dir / "artifacts"
    out: list[tuple[Path, str | None]] = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name.startswith(".") and ".tmp-" in path.name:
            out.append((path, "the leftover of an interrupted save"))
            continue
        try:
            out.append((path, Artifact.open(path).problem()))
        except BenchError as exc:
            out.append((path, str(exc)))
    return out


def clear_cache(cache_dir: Path, parts: tuple[str, ...] = CACHE_PARTS) -> tuple[int, int]:
    """Delete what bench keeps in `cache_dir` (every part, or the ones named); (entries, bytes) removed."""
    count = size = 0
    for part in parts:
        for path in sorted((cache_dir / part).iterdir()) if (cache_dir / part).is_dir() else []:
            size += _bytes([path] if path.is_file() else path.rglob("*"))
            count += 1
            remove(path)
    return count, size


def cache_sizes(cache_dir: Path) -> dict[str, tuple[int, int]]:
    """part -> (entries, bytes on disk) for every part of the cache, and any other folder found in it. A file hard-
    linked into a run directory (bench run --keep-exports) counts here too, though clearing it frees nothing."""
    found = sorted(p.name for p in cache_dir.iterdir() if p.is_dir()) if cache_dir.is_dir() else []
    out = {}
    for part in [*CACHE_PARTS, *(name for name in found if name not in CACHE_PARTS)]:
        entries = [p for p in sorted((cache_dir / part).iterdir()) if not p.name.endswith(".lock")] \
            if (cache_dir / part).is_dir() else []
        out[part] = (len(entries), _bytes(f for p in entries for f in ([p] if p.is_file() else p.rglob("*"))))
    return out


def _bytes(paths) -> int:
    """Bytes of the files among `paths`, each inode once (hard links)."""
    seen: dict[tuple[int, int], int] = {}
    for path in paths:
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            seen[(stat.st_dev, stat.st_ino)] = stat.st_size
    return sum(seen.values())


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def sha256(path: Path) -> str:
    """The file's sha256, hex (how artifacts and exports check their files)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def safetensors_problem(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensors' bytes: the header's offsets
    must cover the file exactly (the name in messages is always model.safetensors's own). A truncated file fails here (safetensors: 'incomplete metadata, file not fully
    covered') without reading the tensors."""
    try:
        with open(path, "rb") as fh:
            length = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(length)) if 0 < length < 100_000_000 else None
        size = path.stat().st_size
    except (OSError, ValueError) as exc:
        return f"{path.name}: unreadable ({exc})"
    try:
        ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    except (AttributeError, KeyError, IndexError, TypeError):
        return f"{path.name}: no valid safetensors header"
    if 8 + length + max(ends, default=0) != size:
        return f"{path.name}: {size} bytes, its header describes {8 + length + max(ends, default=0)} (truncated?)"
    return None
