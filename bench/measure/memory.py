"""Peak memory in a pass of its own, per shape. CUDA: torch's peak allocated/reserved (peaks reset before the
shape) plus NVML's figure for this process on the GPU in use, found by UUID (ONNX Runtime's CUDA arena is invisible
to torch). CPU: peak RSS of this process, sampled while the pass runs. A missing source is null with the reason,
never 0.

NVML lists processes by their PID in the host's namespace; inside a container with its own PID namespace this
process's PID is not among them. Then the device's used memory stands in, with a note that it counts every process
on the GPU (so it is this cell's only when the GPU is otherwise idle).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import psutil

MB = 1024 * 1024


class _RssSampler(threading.Thread):
    """Polls this process's RSS every millisecond; ru_maxrss would only ever grow over the process's life."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.001):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, self.process.memory_info().rss)


def measure_memory(fn: Callable[[], object], synchronize: Callable[[], None], device: str, iters: int = 3,
                   allocator: str = "torch") -> dict[str, Any]:
    """Run `fn` `iters` times and return flat record fields (MB); `peak_memory_mb` is the headline figure.
    `allocator` says whose allocator holds the runner's device memory ("torch" or "onnxruntime")."""
    if device.startswith("cuda"):
        return _cuda(fn, synchronize, device, iters, allocator)
    baseline = psutil.Process().memory_info().rss
    sampler = _RssSampler()
    sampler.start()
    try:
        for _ in range(iters):
            fn()
        synchronize()
    finally:
        peak = sampler.stop()
    return {
        "peak_memory_mb": peak / MB,
        "memory_source": "process peak RSS (sampled every 1 ms; includes everything this process holds)",
        "peak_rss_mb": peak / MB,
        "rss_before_mb": baseline / MB,
        "rss_increase_mb": (peak - baseline) / MB,
        "torch_peak_allocated_mb": None,
        "torch_peak_reserved_mb": None,
        "nvml_process_memory_mb": None,
        "nvml_device_used_mb": None,
        "memory_notes": "CPU: no allocator statistics; RSS is the measure",
    }


def _cuda(fn: Callable[[], object], synchronize: Callable[[], None], device: str, iters: int,
          allocator: str) -> dict[str, Any]:
    import torch

    synchronize()
    torch.cuda.reset_peak_memory_stats(torch.device(device))
    for _ in range(iters):
        fn()
    synchronize()
    allocated = torch.cuda.max_memory_allocated(torch.device(device)) / MB
    reserved = torch.cuda.max_memory_reserved(torch.device(device)) / MB
    nvml = nvml_memory(device)
    headline, source = cuda_headline(allocator, allocated, nvml)
    return {
        "peak_memory_mb": headline,
        "memory_source": source,
        "peak_rss_mb": psutil.Process().memory_info().rss / MB,
        "rss_before_mb": None,
        "rss_increase_mb": None,
        "torch_peak_allocated_mb": allocated,
        "torch_peak_reserved_mb": reserved,
        "nvml_process_memory_mb": nvml["process_mb"],
        "nvml_device_used_mb": nvml["device_used_mb"],
        "memory_notes": nvml["note"],
    }


def cuda_headline(allocator: str, torch_allocated_mb: float, nvml: dict[str, Any]) -> tuple[float | None, str]:
    """peak_memory_mb and where it comes from. NVML's per-process figure first (the same measure for every
    backend: what the driver holds for this process, CUDA context and allocator caches included). Without it:
    torch's peak allocated for torch runners; for ONNX Runtime, whose memory torch never sees, the device's used
    memory with a note, or null with the reason, never torch's near-zero figure."""
    if nvml["process_mb"] is not None:
        return nvml["process_mb"], "NVML used memory of this process on this GPU (after the pass; context and caches included)"
    if allocator == "torch":
        return torch_allocated_mb, "torch peak allocated on this GPU (NVML per-process figure unavailable)"
    if nvml["device_used_mb"] is not None:
        return nvml["device_used_mb"], ("NVML used memory of the whole GPU (this process not listed by NVML): "
                                        "counts every process on it; this cell's only when the GPU is otherwise idle")
    return None, f"no source sees {allocator}'s CUDA memory here: {nvml['note']}"


def nvml_memory(device: str) -> dict[str, Any]:
    """This process's used memory on the GPU torch calls `device` (looked up by UUID), and the GPU's used memory."""
    out: dict[str, Any] = {"process_mb": None, "device_used_mb": None, "note": None}
    try:
        import pynvml
    except ImportError:
        return out | {"note": "NVML unavailable: nvidia-ml-py not installed"}
    try:
        from bench.measure.device import nvml_handle

        pynvml.nvmlInit()
        handle = nvml_handle(pynvml, device)
        out["device_used_mb"] = pynvml.nvmlDeviceGetMemoryInfo(handle).used / MB
        processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception as exc:  # NVMLError: no permission, driver missing; torch: no such device
        return out | {"note": f"NVML error: {type(exc).__name__}: {exc}"}
    mine = [p for p in processes if p.pid == os.getpid()]
    if mine and mine[0].usedGpuMemory is not None:
        return out | {"process_mb": mine[0].usedGpuMemory / MB,
                      "note": "NVML per-process used memory is the current value, read after the pass"}
    if mine:
        return out | {"note": "NVML lists this process but not its memory (usedGpuMemory unavailable, e.g. MIG or "
                              "no permission); the GPU's used memory is recorded instead"}
    return out | {"note": f"NVML lists {len(processes)} process(es) on this GPU, none with this PID {os.getpid()} "
                          "(a container's own PID namespace?); the GPU's used memory is recorded instead"}
