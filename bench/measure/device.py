"""What this machine's devices are: the CPU's model and instruction-set flags, and the GPUs torch sees, each with
the UUID that NVML looks devices up by (NVML numbers GPUs by PCI bus and ignores CUDA_VISIBLE_DEVICES)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")


def _cpuinfo_value(key: str) -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    raise LookupError(key)


def cpu_model() -> str | None:
    try:
        return _cpuinfo_value("model name")
    except Exception:  # no /proc (macOS), or an unusual cpuinfo
        return platform.processor() or None


def cpu_flags() -> dict[str, bool]:
    present = set(_cpuinfo_value("flags").split())
    return {flag: flag in present for flag in CPU_FLAGS}


def torch_gpus() -> list[dict[str, Any]]:
    import torch

    gpus = []
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(i)
        gpus.append({
            "index": i,
            "name": props.name,
            "compute_capability": f"{props.major}.{props.minor}",
            "memory_total_gib": round(props.total_memory / 2**30, 2),
            # torch prints the bare UUID; NVML wants it with the "GPU-" prefix nvidia-smi shows.
            "uuid": "GPU-" + str(props.uuid).removeprefix("GPU-"),
        })
    return gpus


def device_name(device: str) -> str | None:
    """The model name of a measurement device ("cpu", "cuda" or "cuda:N")."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()
