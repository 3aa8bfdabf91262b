"""What this machine can run, for tests skipped by capability (never unconditionally)."""

from __future__ import annotations

import torch


def sparse_tensor_cores_missing() -> str | None:
    """None where 2:4 sparse tensor cores exist (CUDA, compute capability >= 8.0), else why not."""
    if not torch.cuda.is_available():
        return "CUDA is not available"
    major, minor = torch.cuda.get_device_capability()
    return None if (major, minor) >= (8, 0) else f"compute capability {major}.{minor} < 8.0 has no sparse tensor cores"
