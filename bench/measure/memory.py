"""Peak memory in a pass of its own. CUDA: torch's peak allocated/reserved plus NVML's per-process figure
(ONNX Runtime's CUDA allocations are invisible to torch). CPU: peak RSS of this process, sampled while the
pass runs. A missing source is null with the reason, never 0.
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


def measure_memory(fn: Callable[[], object], synchronize: Callable[[], None], device: str, iters: int = 3) -> dict[str, Any]:
    """Run `fn` `iters` times and return flat record fields (MB); `peak_memory_mb` is the headline figure."""
    if device == "cuda":
        return _cuda(fn, synchronize, iters)
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
        "memory_notes": "CPU: no allocator statistics; RSS is the measure",
    }


def _cuda(fn: Callable[[], object], synchronize: Callable[[], None], iters: int) -> dict[str, Any]:
    import torch

    synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(iters):
        fn()
    synchronize()
    allocated = torch.cuda.max_memory_allocated() / MB
    reserved = torch.cuda.max_memory_reserved() / MB
    nvml_mb, note = nvml_process_memory_mb()
    headline = max(v for v in (allocated, nvml_mb or 0.0) if v is not None)
    return {
        "peak_memory_mb": headline,
        "memory_source": "max(torch peak allocated, NVML process used)",
        "peak_rss_mb": psutil.Process().memory_info().rss / MB,
        "rss_before_mb": None,
        "rss_increase_mb": None,
        "torch_peak_allocated_mb": allocated,
        "torch_peak_reserved_mb": reserved,
        "nvml_process_memory_mb": nvml_mb,
        "memory_notes": note,
    }


def nvml_process_memory_mb(device_index: int = 0) -> tuple[float | None, str]:
    """GPU memory NVML attributes to this process (what the driver sees, any allocator)."""
    try:
        import pynvml
    except ImportError:
        return None, "NVML unavailable: nvidia-ml-py not installed"
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid() and proc.usedGpuMemory is not None:
                return proc.usedGpuMemory / MB, "NVML per-process used memory is the current value, read after the pass"
        return None, "NVML lists no memory for this process (containerised PID namespace?)"
    except pynvml.NVMLError as exc:
        return None, f"NVML error: {exc}"
