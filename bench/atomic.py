"""Files written whole or not at all: a temporary file beside the target, flushed, then renamed over it. A reader
(another run, `bench cache verify`, a browser on report.html) sees the old file or the new one, never half of
one, and a write that fails or is interrupted leaves the old file and no temporary behind. Every cache file and
every report file is written through here (artifacts, exports and tokenizers are directories: they are written
into a temporary directory and renamed the same way)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0o600 would hide a shared cache's file from its other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))
