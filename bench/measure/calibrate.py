"""Device peaks measured once per machine: a large GEMM per dtype and a large copy, cached with the environment.

These are the denominators of every "% of peak": measured here, not taken from a datasheet, because a
shared 2-core VM or a power-capped GPU never reaches the datasheet. The best of several repetitions is kept
(a peak, not a typical value). The cache key covers what changes the answer: device, threads, torch version.
Each dtype's GEMM runs under the same TF32 policy as its cells (bench.model.dtypes): `fp32` with TF32 off, `tf32`
(CUDA, Ampere+) with it on, so an fp32 cell is never divided by a TF32 peak or the other way round.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import atomic
from bench.measure.device import device_name
from bench.measure.gemm_libraries import library_tflops, theoretical_cpu_tflops_fp32
from bench.model.dtypes import TORCH_DTYPES, apply_tf32_policy, tf32_unsupported
from bench.measure.timing import time_iterations

GEMM_SIZE = {"cpu": 2048, "cuda": 8192}
COPY_MB = {"cpu": 256, "cuda": 2048}


# 2: fp32 under the TF32-off policy, and a tf32 peak on CUDA. 3: the best of every GEMM library (torch's BLAS,
# oneDNN, ONNX Runtime's MLAS), each recorded, and a theoretical CPU peak.
CALIBRATION_VERSION = 3


def calibration_key(device: str, threads: int) -> dict[str, Any]:
    return {"device": device, "device_name": device_name(device), "threads": threads, "torch": torch.__version__,
            "calibration_version": CALIBRATION_VERSION}


def cache_path(cache_dir: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / "calibration" / f"{key['device'].replace(':', '')}-{digest}.json"


def load_or_measure(cache_dir: Path, device: str, threads: int, *, refresh: bool = False,
                    note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The cached peaks of this environment, else measured and cached (atomically). A damaged cache file (cut off,
    not JSON, another key) is measured again, with a note saying so, and replaced."""
    key = calibration_key(device, threads)
    path = cache_path(cache_dir, key)
    if path.is_file() and not refresh:
        problem = calibration_problem(path, key)
        if problem is None:
            return json.loads(path.read_text(encoding="utf-8"))
        (note or _warn)(f"calibration cache {path} {problem}; measuring the peaks again")
    result = {**key, "measured_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), **measure(device, threads)}
    atomic.write_json(path, result)
    return result


def calibration_problem(path: Path, key: dict[str, Any] | None = None) -> str | None:
    """None for a whole calibration file (JSON with its key and a peak per dtype); else what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if not isinstance(data, dict):
        return "is not a JSON object"
    missing = [k for k in (*(key or {}), *(f"peak_tflops_{name}" for name in TORCH_DTYPES), "peak_gbps") if k not in data]
    if missing:
        return f"lacks {', '.join(missing[:3])}"
    if key is not None and any(data[k] != v for k, v in key.items()):
        return "was measured for another environment"
    return None


def verify_calibrations(cache_dir: Path) -> list[tuple[Path, str | None]]:
    """Every cached calibration file and its problem (None: whole), for `bench cache verify`."""
    return [(path, calibration_problem(path)) for path in sorted((cache_dir / "calibration").glob("*.json"))]


def _warn(message: str) -> None:
    import sys

    print(f"note: {message}", file=sys.stderr)


def sweep_peaks(mode: str, device: str, threads: int, cache_dir: Path, console) -> dict[str, Any] | None:
    """A sweep's peaks by its `measure.peaks` mode: measured once per machine if missing (auto), only if cached,
    or none (off)."""
    key = calibration_key(device, threads)
    path = cache_path(cache_dir, key)
    cached = path.is_file()
    if mode == "cached" and cached and calibration_problem(path, key):
        console.print(f"[yellow]note[/] calibration cache {path} {calibration_problem(path, key)}; measure.peaks = "
                      "'cached' leaves % of peak out (`bench calibrate --refresh` measures again)")
        return None
    if mode == "off" or (mode == "cached" and not cached):
        return None
    if not cached:
        console.print(f"calibrating {device} peaks once for this machine (bench calibrate)...")
    return load_or_measure(cache_dir, device, threads, note=lambda line: console.print(f"[yellow]note[/] {line}"))


def measure(device: str, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    if torch.device(device).index is not None:
        torch.cuda.set_device(torch.device(device).index)
    peaks: dict[str, float | None] = {}
    for name, dtype in TORCH_DTYPES.items():
        if tf32_unsupported(name, device):
            peaks[f"peak_tflops_{name}"] = None  # no TF32 here: tf32 cells are skipped
            continue
        apply_tf32_policy(name)
        by_library, skipped = _gemm_tflops(device, dtype)
        best = max(by_library, key=by_library.get) if by_library else None
        peaks[f"peak_tflops_{name}"] = by_library[best] if best else None
        peaks[f"peak_library_{name}"] = best
        peaks[f"peak_tflops_{name}_by_library"] = by_library
        if skipped:
            peaks[f"gemm_skipped_{name}"] = skipped
    apply_tf32_policy("fp32")
    if _kind(device) == "cpu":
        peaks |= theoretical_cpu_tflops_fp32(threads)
    return {**peaks, "peak_gbps": _copy_gbps(device), "copy_mb": COPY_MB[_kind(device)], "tf32_policy":
            "peak_tflops_fp32 with TF32 off, peak_tflops_tf32 with TF32 on"}


def _kind(device: str) -> str:
    return device.partition(":")[0]


def _sync(device: str):
    return (lambda: torch.cuda.synchronize(torch.device(device))) if _kind(device) == "cuda" else (lambda: None)


def _gemm_size(device: str, dtype: torch.dtype, target_s: float = 0.05) -> int:
    """Largest square GEMM up to GEMM_SIZE that takes about target_s: a dtype without fast kernels
    (fp16 on most CPUs runs at well under 1 GFLOP/s) would otherwise take minutes per product."""
    n = 256
    a = torch.randn(n, n, device=device).to(dtype)
    probe = time_iterations(lambda: torch.mm(a, a), synchronize=_sync(device), cuda_events=_kind(device) == "cuda",
                            warmup=1, min_iters=3, min_time_s=0.0, max_time_s=5.0)
    flops_per_s = 2 * n**3 / (probe.min() / 1e9)
    fitting = int((flops_per_s * target_s / 2) ** (1 / 3)) // 128 * 128
    return max(n, min(GEMM_SIZE[_kind(device)], fitting))


def _gemm_tflops(device: str, dtype: torch.dtype) -> tuple[dict[str, float], dict[str, str]]:
    """TFLOP/s per GEMM library (bench.measure.gemm_libraries) at the dtype's size, and the libraries left out."""
    return library_tflops(device, dtype, _gemm_size(device, dtype), _sync(device))


def _copy_gbps(device: str) -> float:
    """Read + write bandwidth of a large device-to-device copy."""
    src = torch.empty(COPY_MB[_kind(device)] * 2**20 // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    samples = time_iterations(lambda: dst.copy_(src), synchronize=_sync(device), cuda_events=_kind(device) == "cuda",
                              warmup=2, min_iters=5, min_time_s=0.5, max_time_s=20.0)
    return float(2 * src.numel() * src.element_size() / (samples.min() / 1e9) / 1e9)


def roofline_fields(cost, latency_s: float, dtype: str, peaks: dict[str, Any] | None,
                    library: str | None = None) -> dict[str, Any]:
    """achieved TFLOP/s and GB/s of one forward, % of the machine's peak (the best GEMM library measured here), %
    of the peak of `library` (the one that ran the cell's linears), and which roof bounds it."""
    achieved_tflops = cost.flops_executed / latency_s / 1e12
    achieved_gbps = cost.min_bytes / latency_s / 1e9
    fields: dict[str, Any] = {"achieved_tflops": achieved_tflops, "achieved_gbps": achieved_gbps,
                              **cost.record(), "percent_of_peak": None, "bound": None,
                              "linear_library": library, "percent_of_library_peak": None}
    peak_tflops = (peaks or {}).get(f"peak_tflops_{dtype}")
    if peak_tflops:
        ridge = peak_tflops * 1e12 / (peaks["peak_gbps"] * 1e9)  # FLOPs per byte where the roofs meet
        bound = "compute" if cost.intensity >= ridge else "memory"
        roof = peak_tflops if bound == "compute" else cost.intensity * peaks["peak_gbps"] / 1e3
        percent = 100 * achieved_tflops / roof
        fields.update(percent_of_peak=percent, bound=bound, peak_tflops=peak_tflops,
                      peak_library=peaks.get(f"peak_library_{dtype}"),
                      peak_gbps=peaks["peak_gbps"], ridge_flops_per_byte=ridge)
        own = (peaks.get(f"peak_tflops_{dtype}_by_library") or {}).get(library)
        if own:
            own_roof = min(own, roof) if bound == "memory" else own
            fields.update(library_peak_tflops=own, percent_of_library_peak=100 * achieved_tflops / own_roof)
        if percent > 100:
            # A model cannot beat the best GEMM measured on the same machine; the calibration ran slow (a loaded
            # machine, other threads): `bench calibrate --refresh` on a quiet machine.
            fields["peak_note"] = f"above the calibrated peak ({percent:.0f}%): recalibrate on a quiet machine"
    return fields
