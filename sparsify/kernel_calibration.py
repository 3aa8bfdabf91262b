"""Break-even densities of the sparse kernels on this machine: the highest weight density at which a kernel is
measured faster than the dense linear, per kernel, weight shape, dtype and device, cached per machine.

`auto` uses them to pick a kernel per linear, so they are measured where the cell runs (its worker), on random
weights of the linear's own shape, masked at each density of DENSITIES (uniformly for CSR, in whole blocks for
BSR), at each token count of TOKENS. The kernel is given its input as it reads it in the model, x^T contiguous
(CompressedLinear.reads_transposed): there q/k/v share one transpose, and out_proj and fc2 are fed x^T by what
precedes them; charging each linear a transpose of its own kept q/k/v, out_proj and fc2 dense at 90-95 % while
they win in the model (random:small, 2 threads: `auto` 1.15x-1.19x, CSR everywhere 1.47x-1.94x). Dense and sparse calls alternate, and the speed-up at a density is the median
of per-pair ratios, so a drifting machine hits both alike. A density counts as a win only when every token count
gains at least MARGIN there and at every lower density of the grid: `auto` must never pick a kernel that loses,
and a kernel that wins only at some batch sizes is not picked.

The cache file sits beside `bench calibrate`'s (cache_dir/calibration/), keyed by what changes the answer: the
device's name, the CPU model, threads, torch version and dtype.
"""

from __future__ import annotations

import hashlib
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sparsify.kernels import PRODUCT_VERSION, CompressedLinear, Layout

DENSITIES = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05)  # high to low
TOKENS = (64, 512)
MARGIN = 1.05  # a kernel must beat dense by 5% to count: the noise of one short calibration on a shared machine
PAIRS = 9  # alternating dense / sparse calls per point, after two warm-up calls each


def calibration_key(device: str, dtype: torch.dtype, threads: int) -> dict[str, Any]:
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else _cpu_model()
    return {"kind": "sparse-kernels", "device": device, "device_name": name, "threads": threads,
            "torch": torch.__version__, "dtype": str(dtype).removeprefix("torch."), "product": PRODUCT_VERSION,
            "input": "transposed"}


def cache_path(cache_dir: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / "calibration" / f"sparse-kernels-{key['device'].replace(':', '')}-{digest}.json"


class Calibration:
    """Break-even densities for one device, dtype and thread count, measured on demand and cached."""

    def __init__(self, cache_dir: Path | None, device: str, dtype: torch.dtype, threads: int) -> None:
        self.device, self.dtype, self.threads = device, dtype, threads
        self.key = calibration_key(device, dtype, threads)
        self.path = cache_path(cache_dir, self.key) if cache_dir is not None else None
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.is_file():
            self.entries = json.loads(self.path.read_text()).get("entries", {})
        self.measured: list[str] = []  # entries measured by this process (the rest came from the cache)

    def breakeven(self, layout: Layout, shape: tuple[int, int]) -> float:
        """The highest density of DENSITIES at which `layout` beats dense for a weight of `shape` (0.0: never)."""
        name = f"{layout.label} {shape[0]}x{shape[1]}"
        if name not in self.entries:
            self.entries[name] = measure(layout, shape, self.device, self.dtype)
            self.measured.append(name)
            self._save()
        return self.entries[name]["breakeven_density"]

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key, "entries": self.entries}, indent=2, sort_keys=True))
        tmp.replace(self.path)

    def record(self) -> dict[str, Any]:
        return {"sparse_kernel_calibration": str(self.path) if self.path else "not cached",
                "sparse_kernel_calibration_measured": list(self.measured)}


@torch.inference_mode()
def measure(layout: Layout, shape: tuple[int, int], device: str, dtype: torch.dtype) -> dict[str, Any]:
    """Speed-up of the layout over F.linear at each density and token count, and the break-even density."""
    generator = torch.Generator().manual_seed(0)
    out_f, in_f = shape
    speedups: dict[str, dict[str, float]] = {}
    for density in DENSITIES:
        weight = torch.randn(out_f, in_f, generator=generator) * _mask(layout, shape, density, generator)
        linear = torch.nn.Linear(in_f, out_f, bias=False)
        linear.weight.data = weight
        sparse = CompressedLinear(linear, layout).to(device, dtype)
        dense_w = weight.to(device, dtype)
        speedups[str(density)] = {}
        for tokens in TOKENS:
            x = torch.randn(tokens, in_f, generator=generator).to(device, dtype)
            x_rows = x.t().contiguous().t()  # the same values as the x^T view the model hands a kernel
            speedups[str(density)][str(tokens)] = _paired(lambda: F.linear(x, dense_w), lambda: sparse(x_rows), device)
    return {"breakeven_density": breakeven_density(speedups), "speedup_by_density_tokens": speedups, "margin": MARGIN}


def breakeven_density(speedups: dict[str, dict[str, float]], margin: float = MARGIN) -> float:
    """The highest density d such that at d and at every lower density measured, every token count gains at least
    `margin`; 0.0 when the sparsest density already loses. speedups: {density: {tokens: speed-up}}."""
    breakeven = 0.0
    for density in sorted(speedups, key=float):  # low to high: the run of wins from the sparsest end
        if min(speedups[density].values()) < margin:
            break
        breakeven = float(density)
    return breakeven


def _mask(layout: Layout, shape: tuple[int, int], density: float, generator: torch.Generator) -> torch.Tensor:
    if layout.blocksize is None:
        return (torch.rand(shape, generator=generator) < density).float()
    rows, cols = layout.blocksize
    blocks = (torch.rand(shape[0] // rows, shape[1] // cols, generator=generator) < density).float()
    return blocks.repeat_interleave(rows, 0).repeat_interleave(cols, 1)


def _paired(dense, sparse, device: str) -> float:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def once(fn) -> int:
        sync()
        start = time.perf_counter_ns()
        fn()
        sync()
        return time.perf_counter_ns() - start

    for _ in range(2):
        once(dense), once(sparse)
    return statistics.median(once(dense) / once(sparse) for _ in range(PAIRS))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
