"""Wheel build hook: record the commit a wheel is built from.

A non-editable install (the README's quickstart, `pip install ".[cpu]"`) puts the code in site-packages, outside
any checkout, so a run could not say which code it measured. The wheel carries bench/build_commit.json instead,
which bench.run.env.git_state reads when the package is not in a checkout. An editable install reads its checkout
directly, and a wheel built where git or the checkout is missing records nulls, never a guess.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

RECORD = "bench/build_commit.json"


class CommitHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        commit = _git(self.root, "rev-parse", "HEAD")
        status = _git(self.root, "--no-optional-locks", "status", "--porcelain")
        record = {"git_commit": commit or None, "git_dirty": None if status is None else bool(status)}
        path = Path(tempfile.mkdtemp()) / "build_commit.json"
        path.write_text(json.dumps(record))
        build_data["force_include"][str(path)] = RECORD


def _git(root: str, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
