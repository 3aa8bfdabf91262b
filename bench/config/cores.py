"""The CPU ids `measure.cpu_affinity` may name: checked with the config, before any run directory exists
(bench.run.placement pins a cell's worker to them)."""

from __future__ import annotations

import os


def available_cores() -> list[int] | None:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def check_cores(cores: list[int]) -> list[int]:
    """The CPU ids as given, or a ValueError saying which are wrong and which this process may use."""
    if not cores:
        raise ValueError("an empty list pins to nothing; give CPU ids, or leave cpu_affinity out")
    if len(set(cores)) != len(cores):
        raise ValueError(f"repeated CPU ids in {cores}")
    allowed = available_cores()
    if allowed is None:
        raise ValueError("this OS cannot pin processes to CPUs (no os.sched_setaffinity); leave cpu_affinity out")
    missing = sorted(set(cores) - set(allowed))
    if missing:
        raise ValueError(f"CPU id(s) {missing} are not available to this process; available: {allowed}")
    return cores
