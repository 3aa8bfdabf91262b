"""Environment fingerprint: what a run was measured on, for each run's env.json and report headers.

Every probe is a small function called through `_safe`, so one that fails (no /proc on macOS, no
git, a package missing) yields null instead of aborting a run. Heavy libraries (torch, onnxruntime,
pynvml) are imported inside the probes, never at module import.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from bench.measure import device
from bench.measure.cpu_info import libraries_fingerprint

# Distribution names, not import names: versions come from metadata, without importing anything.
_PACKAGES = ("transformers", "onnx", "onnxscript", "tokenizers", "torch-pruning", "peft", "numpy")
_TORCH_KEYS = (
    "torch_version", "torch_num_threads", "torch_num_interop_threads", "torch_cuda_version",
    "cudnn_version", "cuda_available", "cusparselt_available", "cusparselt_version",
)
_GIT_TIMEOUT_S = 5


def _safe(probe: Callable[..., Any], *args: Any) -> Any:
    try:
        return probe(*args)
    except Exception:  # a fingerprint must never stop a run; null says "unknown"
        return None


def _ort_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _torch() -> dict[str, Any]:
    import torch

    cusparselt = getattr(torch.backends, "cusparselt", None)
    values = (
        torch.__version__,
        torch.get_num_threads(),
        torch.get_num_interop_threads(),
        torch.version.cuda,
        _safe(torch.backends.cudnn.version),
        torch.cuda.is_available(),
        _safe(cusparselt.is_available) if cusparselt else None,
        _safe(cusparselt.version) if cusparselt else None,
    )
    return dict(zip(_TORCH_KEYS, values, strict=True))


def _nvml(gpus: list[dict[str, Any]]) -> dict[str, Any]:
    """Driver version and per-GPU max clocks and power limit, matched to torch's GPUs by UUID."""
    try:
        import pynvml as nv

        nv.nvmlInit()
        try:
            driver = nv.nvmlSystemGetDriverVersion()
            for gpu in gpus:
                handle = nv.nvmlDeviceGetHandleByUUID(gpu["uuid"])
                gpu["sm_clock_max_mhz"] = nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_SM)
                gpu["memory_clock_max_mhz"] = nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_MEM)
                gpu["power_limit_w"] = nv.nvmlDeviceGetPowerManagementLimit(handle) / 1000  # mW
        finally:
            nv.nvmlShutdown()
    except Exception as e:
        for gpu in gpus:
            gpu.update(dict.fromkeys(("sm_clock_max_mhz", "memory_clock_max_mhz", "power_limit_w")))
        return {"nvidia_driver_version": None, "nvml_error": f"{type(e).__name__}: {e}"}
    return {"nvidia_driver_version": driver, "nvml_error": None}


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["git", "-C", str(root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S)


def git_state(package_dir: Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout that holds `package_dir`; outside a checkout (a non-editable
    install), what the wheel recorded when it was built (hatch_build.py); nulls when neither says.

    A package installed into a venv that sits inside some other repository is ignored there, so an
    ignored package directory counts as "not a checkout" rather than reporting the wrong repository.
    """
    state = _checkout_state(package_dir)
    if state["git_commit"] is None and state["git_dirty"] is None:
        return _built_state(package_dir) or state
    return state


def _built_state(package_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((package_dir / "build_commit.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    return {"git_commit": record.get("git_commit"), "git_dirty": record.get("git_dirty")}


def _checkout_state(package_dir: Path) -> dict[str, Any]:
    nulls = {"git_commit": None, "git_dirty": None}
    root = package_dir.resolve().parent
    try:
        ignored = _git(root, "check-ignore", "-q", str(package_dir.resolve()))
        if ignored.returncode != 1:  # 0: ignored; 128: not a repository
            return nulls
        head = _git(root, "rev-parse", "HEAD")  # fails in a repository with no commits yet
        # --no-optional-locks: a plain `git status` refreshes the index and so takes .git/index.lock, a write into
        # the user's checkout (and a failure beside a running `git commit`).
        status = _git(root, "--no-optional-locks", "status", "--porcelain")
    except (OSError, subprocess.SubprocessError):  # git missing or hung
        return nulls
    return {
        "git_commit": head.stdout.strip() if head.returncode == 0 else None,
        "git_dirty": bool(status.stdout.strip()) if status.returncode == 0 else None,
    }


def fingerprint(onnxruntime: bool = True) -> dict[str, Any]:
    """A flat, JSON-serialisable description of the machine, software stack and code version. onnxruntime=False
    (a run with no ORT cell) leaves its providers null rather than importing it only to ask."""
    import bench
    from bench import plugins

    memory = _safe(psutil.virtual_memory)
    gpus = _safe(device.torch_gpus)  # None (unknown) when the probe fails, [] when there are no GPUs
    return {
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": _safe(socket.gethostname),
        "platform": _safe(platform.platform),
        "python_version": platform.python_version(),
        "cpu_model": device.cpu_model(),
        "cpu_flags": _safe(device.cpu_flags),
        # vendor/family/model/microarchitecture, SMT, NUMA, torch's BLAS, oneDNN version and ISA, ORT's build
        **(_safe(libraries_fingerprint) or {}),
        "cpu_cores_physical": _safe(psutil.cpu_count, False),
        "cpu_cores_logical": _safe(psutil.cpu_count, True),
        "memory_total_gib": round(memory.total / 2**30, 2) if memory else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "mkl_num_threads": os.environ.get("MKL_NUM_THREADS"),
        **(_safe(_torch) or dict.fromkeys(_TORCH_KEYS)),
        "gpus": gpus,
        # Without a GPU there is nothing for NVML to describe, and its absence is not an error.
        **(_nvml(gpus) if gpus else {"nvidia_driver_version": None, "nvml_error": None}),
        **{f"{p.replace('-', '_')}_version": _safe(version, p) for p in _PACKAGES},
        # ORT's CPU and CUDA builds are separate distributions of one import name.
        "onnxruntime_version": _safe(version, "onnxruntime") or _safe(version, "onnxruntime-gpu"),
        "onnxruntime_providers": _safe(_ort_providers) if onnxruntime else None,
        "bench_version": bench.__version__,
        # the methods and backends this run could use, and the module that declares each (plug-ins included)
        "plugins": _safe(plugins.inventory),
        **git_state(Path(bench.__file__).parent),
    }
