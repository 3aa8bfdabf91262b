"""What the CPU is and which GEMM libraries run on it: vendor, family, model, microarchitecture, SMT and NUMA read
from the OS, and torch's BLAS, oneDNN's version and ISA, and ONNX Runtime's MLAS read from the libraries themselves.

Backend rankings flip with the CPU vendor because the libraries behind the linears differ (MKL is slow on AMD,
oneDNN and MLAS are not), so env.json names them. Every probe returns None where the value cannot be read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bench.measure.device import _cpuinfo_value

# (vendor, family, model) -> microarchitecture, for the CPUs these machines have met; unknown ones stay None.
_MICROARCH = {
    ("GenuineIntel", 6, 85): "Skylake-SP / Cascade Lake", ("GenuineIntel", 6, 106): "Ice Lake-SP",
    ("GenuineIntel", 6, 143): "Sapphire Rapids", ("GenuineIntel", 6, 207): "Emerald Rapids",
    ("GenuineIntel", 6, 173): "Granite Rapids",
    ("AuthenticAMD", 23, 49): "Zen 2", ("AuthenticAMD", 25, 1): "Zen 3", ("AuthenticAMD", 25, 17): "Zen 4",
    ("AuthenticAMD", 26, 2): "Zen 5", ("AuthenticAMD", 26, 17): "Zen 5",
}


def _int(key: str) -> int | None:
    try:
        return int(_cpuinfo_value(key))
    except Exception:
        return None


def cpu_identity() -> dict[str, Any]:
    """Vendor, family, model, stepping and (where the table knows it) the microarchitecture."""
    try:
        vendor = _cpuinfo_value("vendor_id")
    except Exception:
        vendor = None
    family, model = _int("cpu family"), _int("model")
    return {"cpu_vendor": vendor, "cpu_family": family, "cpu_model_number": model, "cpu_stepping": _int("stepping"),
            "cpu_microarchitecture": _MICROARCH.get((vendor, family, model)),
            "cpu_mhz": _cpu_mhz()}


# The instructions that compute bf16 natively; without them bf16 matmuls convert to fp32 and back.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "avx_ne_convert")


def bf16_fields(dtype: str, device: str) -> dict[str, Any]:
    """For a bf16 cell on the CPU: which native bf16 instructions the CPU has, and what that means (empty elsewhere)."""
    if dtype != "bf16" or device.startswith("cuda"):
        return {}
    try:
        flags = set(_cpuinfo_value("flags").split())
    except Exception:
        return {"cpu_bf16_instructions": None, "cpu_bf16_note": "the CPU's flags could not be read"}
    have = [f for f in BF16_FLAGS if f in flags]
    note = ("native bf16 dot products" + (" and AMX tiles" if "amx_bf16" in have else "") if have else
            f"no native bf16 ({', '.join(BF16_FLAGS)} absent): bf16 matmuls convert to fp32 and back, expect them "
            "slower than fp32")
    return {"cpu_bf16_instructions": have, "cpu_bf16_note": note}


def _cpu_mhz() -> float | None:
    """The nominal clock: the highest of psutil's max frequency and /proc/cpuinfo's current one (a VM shows only
    the latter)."""
    import psutil

    values = []
    try:
        freq = psutil.cpu_freq()
        if freq and freq.max:
            values.append(float(freq.max))
    except Exception:
        pass
    try:
        values.append(float(_cpuinfo_value("cpu MHz")))
    except Exception:
        pass
    return max(values) if values else None


def topology() -> dict[str, Any]:
    """SMT (threads per core), NUMA nodes, and the CPUs this process may run on."""
    import psutil

    physical, logical = psutil.cpu_count(False), psutil.cpu_count(True)
    smt = Path("/sys/devices/system/cpu/smt/active")
    nodes = sorted(p.name for p in Path("/sys/devices/system/node").glob("node[0-9]*"))
    return {
        "cpu_threads_per_core": logical // physical if physical and logical else None,
        "cpu_smt_active": smt.read_text().strip() == "1" if smt.is_file() else None,
        "numa_nodes": len(nodes) or None,
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def torch_libraries() -> dict[str, Any]:
    """torch's BLAS (MKL with its version, or OpenBLAS and its core type) and oneDNN's version and dispatched ISA."""
    import torch

    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", config)
    onednn = re.search(r"MKL-DNN v([\d.]+)", config)
    capability = re.search(r"CPU capability usage: (\w+)", config)
    return {
        "blas": blas.group(1) if blas else None,
        "blas_version": mkl.group(1) if mkl else _openblas_config(),
        "onednn_version": onednn.group(1) if onednn else None,
        "onednn_available": torch.backends.mkldnn.is_available(),
        "onednn_isa": _onednn_isa(),
        "onednn_bf16": _call(torch.ops.mkldnn._is_mkldnn_bf16_supported),
        "torch_cpu_capability": capability.group(1) if capability else None,
    }


def _call(fn) -> Any:
    try:
        return fn()
    except Exception:
        return None


def _openblas_config() -> str | None:
    """OpenBLAS's own config line (version and core type), when torch links it."""
    import ctypes

    try:
        lib = ctypes.CDLL(None)
        lib.openblas_get_config.restype = ctypes.c_char_p
        return lib.openblas_get_config().decode()
    except Exception:
        return None


def _onednn_isa() -> str | None:
    """The ISA oneDNN dispatches to, from its verbose line (ONEDNN_VERBOSE=1 in a child process, so this
    process's oneDNN state stays untouched)."""
    import subprocess
    import sys

    code = "import torch; torch.backends.mkldnn.is_available() and torch.ops.mkldnn._linear_pointwise(" \
           "torch.ones(2, 8), torch.ops.mkldnn._reorder_linear_weight(torch.ones(4, 8), 2), None, 'none', [], '')"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "ONEDNN_VERBOSE": "1"})
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"cpu,runtime:[^\n]*\n[^\n]*isa:([^\n]+)", out.stdout) or re.search(r"isa:([^\n]+)", out.stdout)
    return match.group(1).strip() if match else None


def ort_mlas() -> dict[str, Any]:
    """ONNX Runtime's build (its MLAS features are not exposed by the Python API: the build info says what it can)."""
    import onnxruntime

    info = _call(onnxruntime.get_build_info)
    return {"onnxruntime_build_info": info,
            "onnxruntime_mlas": "MLAS features are chosen at run time from the CPU's ISA and not exposed by onnxruntime's API"}


def libraries_fingerprint() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for probe in (cpu_identity, topology, torch_libraries, ort_mlas):
        try:
            fields |= probe()
        except Exception:  # a fingerprint never stops a run
            pass
    return fields
