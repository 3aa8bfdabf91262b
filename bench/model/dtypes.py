"""The dtypes a model runs in, by the names configs and records use, and the one TF32 policy every backend and the
calibration follow.

`fp32` is IEEE float32 everywhere: TF32 tensor cores off in torch (cuBLAS, cuDNN) and in ONNX Runtime's CUDA
provider (whose default is on). `tf32` is the same float32 model with TF32 tensor cores on, a dtype of its own so
that it is measured, labelled and compared as what it is. Half precisions do not use TF32; the policy there is off.
Without one policy, ORT "fp32" on an Ampere+ GPU runs TF32 while torch and the calibration do not: several times
faster, above 100% of the fp32 peak, and blamed on a loaded machine.

torch 2.13 refuses to mix its legacy TF32 switches with the new `fp32_precision` ones (reading one after setting the
other raises), and inductor and autotuning read both, so the policy is set through the legacy pair only:
`torch.set_float32_matmul_precision` ("highest" / "high") and `torch.backends.cudnn.allow_tf32`.
"""

from __future__ import annotations

from typing import Any

import torch

# tf32 is stored as float32: the difference is how matmuls round, not what tensors hold.
TORCH_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
HALF = ("fp16", "bf16")

_applied: bool | None = None  # the TF32 setting this process last applied (None: never)


def uses_tf32(dtype: str) -> bool:
    """Whether a cell of this dtype runs float32 matmuls on TF32 tensor cores (only the explicit `tf32` dtype)."""
    return dtype == "tf32"


def tf32_unsupported(dtype: str, device: str) -> str | None:
    """Why a `tf32` cell cannot run on this device, or None. TF32 exists only on CUDA GPUs from Ampere (8.0) on."""
    if dtype != "tf32":
        return None
    if not device.startswith("cuda"):
        return f"TF32 is a CUDA tensor-core mode (compute capability >= 8.0); on {device} float32 is float32: measure fp32"
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(torch.device(device))
        if major < 8:
            return f"compute capability {major}.{minor} < 8.0 has no TF32 tensor cores: measure fp32"
    return None


def apply_tf32_policy(dtype: str, *, force: bool = False) -> dict[str, Any]:
    """Set this process's torch TF32 switches for a cell of `dtype`; returns the record fields that say so.

    Cheap when nothing changes (a module-level flag), so runners may call it before every forward: cells measured in
    one process (isolation "none", interleaved rounds) each get their own policy back."""
    global _applied
    enabled = uses_tf32(dtype)
    if force or _applied is not enabled:
        torch.set_float32_matmul_precision("high" if enabled else "highest")
        torch.backends.cudnn.allow_tf32 = enabled
        _applied = enabled
    return tf32_fields(dtype)


def tf32_fields(dtype: str) -> dict[str, Any]:
    """What every record says about TF32: on only for dtype `tf32`, the same for eager, compile, ORT, calibration."""
    return {"tf32": uses_tf32(dtype), "tf32_policy": "tf32 only for dtype 'tf32'; fp32 is IEEE float32 on every backend"}


def torch_tf32_state() -> dict[str, Any]:
    """What torch's switches say now (for `bench doctor` and tests): matmul precision and cuDNN's TF32 flag."""
    return {"float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
