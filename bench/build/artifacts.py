"""Artifacts: a trained variant as a directory (safetensors + tokenizer + JSON metadata) in a cache keyed by
a hash of its recipe, so a second run with the same recipe loads instead of training again.

Loading never runs code from an artifact: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"


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

    def load_model(self):
        """Rebuild the classifier from JSON metadata and load the safetensors weights (per architecture kind)."""
        from bench.build.methods import load_artifact_model

        return load_artifact_model(self.path / MODEL_FILE, self.meta["architecture"])

    def load_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.path)


def lookup(cache_dir: Path, recipe: dict[str, Any]) -> Artifact | None:
    path = artifact_path(cache_dir, recipe)
    return Artifact.open(path) if (path / META_FILE).is_file() else None


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
    tmp.mkdir(parents=True)
    if state_dict is None:
        save_model(model, str(tmp / MODEL_FILE))
    else:
        save_file({k: t.contiguous() for k, t in state_dict.items()}, str(tmp / MODEL_FILE))
    tokenizer.save_pretrained(tmp)
    full_meta = {"key": recipe_key(recipe), "recipe": recipe, **meta}
    (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2, sort_keys=True))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return Artifact(path, full_meta)
