"""The cell worker processes of a running `bench` process, for tests that kill or signal runs."""

from __future__ import annotations

import psutil


def cell_processes(parent: psutil.Process) -> list[psutil.Process]:
    """The spawned cell workers under `parent`; a short-lived child that exits (or is a zombie) while we look is none."""
    out = []
    for child in parent.children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.Error:
            continue
    return out
