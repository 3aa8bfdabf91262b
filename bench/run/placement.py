"""Where a cell's worker runs and with how many threads: the optional pinning to given CPUs (measure.cpu_affinity)
and the threads and affinity it ended up with, recorded on every record of the cell."""

from __future__ import annotations

import os
from typing import Any

from bench.config.cores import available_cores


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
