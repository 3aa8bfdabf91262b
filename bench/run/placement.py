"""Where a cell's worker runs and with how many threads: the optional pinning to given CPUs (measure.cpu_affinity)
and the threads and affinity it ended up with, recorded on every record of the cell."""

from __future__ import annotations

import os
from typing import Any


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


def pin(cores: list[int] | None) -> None:
    """Pin this process (and the threads it starts afterwards: OpenMP's pool, ORT's intra-op threads) to `cores`."""
    if cores is not None:
        os.sched_setaffinity(0, cores)


def placement_fields(threads: int, pinned: list[int] | None) -> dict[str, Any]:
    """The cell's threads as configured and as torch has them, and the CPUs it may run on."""
    import torch

    return {"measure_threads": threads, "torch_intra_op_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "cpu_affinity_pinned": pinned is not None, "cpu_affinity": available_cores()}
