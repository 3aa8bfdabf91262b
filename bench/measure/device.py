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
            "uuid": cuda_uuid(i),
        })
    return gpus


def device_name(device: str) -> str | None:
    """The model name of a measurement device ("cpu", "cuda" or "cuda:N")."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def cuda_index(device: str) -> int:
    """The CUDA runtime index of "cuda" (the current device) or "cuda:N" (CUDA_VISIBLE_DEVICES already applied)."""
    import torch

    index = torch.device(device).index
    return torch.cuda.current_device() if index is None else index


def cuda_uuid(index: int) -> str:
    """The NVML-style UUID ("GPU-...") of the CUDA device torch numbers `index`."""
    import torch

    return "GPU-" + str(torch.cuda.get_device_properties(index).uuid).removeprefix("GPU-")


def nvml_handle(nvml: Any, device: str) -> Any:
    """NVML's handle of the GPU that torch calls `device`, looked up by UUID: NVML numbers GPUs by PCI bus and
    ignores CUDA_VISIBLE_DEVICES, so its index 0 need not be the device in use. `nvml` is the pynvml module,
    initialised. (bytes: nvidia-ml-py before 11.5 takes no str.)"""
    return nvml.nvmlDeviceGetHandleByUUID(cuda_uuid(cuda_index(device)).encode())
