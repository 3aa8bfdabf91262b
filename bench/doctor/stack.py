"""The stack part of `bench doctor`: what is installed and whether it really works here (a provider listed by ONNX
Runtime is not a provider that runs: each one runs a small session, on that provider only)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.doctor import Check, failed, passed, skipped

AREA = "stack"


def stack_checks() -> list[Check]:
    return [_torch(), _cudnn(), _cusparselt(), *_ort_providers(), _nvml(), _tf32()]


def _torch() -> Check:
    build = f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none (CPU build)'}"
    if not torch.cuda.is_available():
        return passed(AREA, "torch", f"{build}; no CUDA device: GPU rows are skipped")
    gpus = ", ".join(f"cuda:{i} {torch.cuda.get_device_name(i)} (cc {'.'.join(map(str, torch.cuda.get_device_capability(i)))})"
                     for i in range(torch.cuda.device_count()))
    return passed(AREA, "torch", f"{build}; {gpus}")


def _cudnn() -> Check:
    if not torch.cuda.is_available():
        return skipped(AREA, "cuDNN", "no CUDA device")
    if not torch.backends.cudnn.is_available():
        return failed(AREA, "cuDNN", "CUDA is available but torch finds no cuDNN")
    return passed(AREA, "cuDNN", f"cuDNN {torch.backends.cudnn.version()}")


def _cusparselt() -> Check:
    if not torch.cuda.is_available():
        return skipped(AREA, "cuSPARSELt", "no CUDA device (2:4 sparse tensor cores are CUDA-only)")
    if torch.backends.cusparselt.is_available():
        return passed(AREA, "cuSPARSELt", f"cuSPARSELt {torch.backends.cusparselt.version()}")
    return passed(AREA, "cuSPARSELt", "not in this torch build: semi24 uses torch's CUTLASS 2:4 kernel instead")


def _ort_providers() -> list[Check]:
    try:
        import onnxruntime as ort
    except ImportError:
        return [skipped(AREA, "ONNX Runtime", "onnxruntime is not installed (pip install 'xglm-bench[cpu]' or '[gpu]')")]
    checks = []
    for provider in ("CPUExecutionProvider", "CUDAExecutionProvider"):
        name = f"ORT {provider}"
        if provider not in ort.get_available_providers():
            checks.append(skipped(AREA, name, f"onnxruntime {ort.__version__} has no {provider} "
                                              "(CUDA needs onnxruntime-gpu instead of onnxruntime)"))
        elif provider == "CUDAExecutionProvider" and not torch.cuda.is_available():
            checks.append(skipped(AREA, name, "listed, but torch sees no CUDA device"))
        else:
            checks.append(_run_session(ort, provider))
    return checks


def _run_session(ort, provider: str) -> Check:
    """A [2, 4] x [4, 3] MatMul on `provider` only (no silent CPU fallback), checked against numpy."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from bench.backends.onnxruntime.session import preload_cuda_libraries

    name = f"ORT {provider}"
    note = f"; preload_dlls {preload_cuda_libraries(ort)}" if provider == "CUDAExecutionProvider" else ""
    weight = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "doctor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 10)  # readable by older ORT builds too
    x = np.ones((2, 4), dtype=np.float32)
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "doctor.onnx"
            onnx.save(model, str(path))
            session = ort.InferenceSession(str(path), providers=[provider], enable_fallback=0)
            got = session.run(None, {"x": x})[0]
    except Exception as exc:
        return failed(AREA, name, f"a session on {provider} failed: {' '.join(str(exc).split())[:240]}{note}")
    if provider not in session.get_providers():
        return failed(AREA, name, f"the session got {session.get_providers()} instead (CUDA/cuDNN mismatch?){note}")
    if not np.allclose(got, x @ weight, atol=1e-5):
        return failed(AREA, name, f"a MatMul on {provider} gave wrong numbers{note}")
    return passed(AREA, name, f"onnxruntime {ort.__version__}: a session ran on {provider}{note}")


def _nvml() -> Check:
    if not torch.cuda.is_available():
        return skipped(AREA, "NVML", "no CUDA device (NVML measures GPUs: energy and per-process memory)")
    try:
        import pynvml
    except ImportError:
        return failed(AREA, "NVML", "nvidia-ml-py is not installed: no energy, no ONNX Runtime memory (pip install 'xglm-bench[gpu]')")
    from bench.measure.device import nvml_handle
    from bench.measure.energy import EnergyCounter

    try:
        pynvml.nvmlInit()
        found = [f"cuda:{i} by UUID" for i in range(torch.cuda.device_count()) if nvml_handle(pynvml, f"cuda:{i}")]
        driver = pynvml.nvmlSystemGetDriverVersion()
    except Exception as exc:
        return failed(AREA, "NVML", f"{type(exc).__name__}: {exc}")
    counter = EnergyCounter.open("cuda")
    period = counter.period_s()
    energy = (counter.reason if counter.handle is None else
              f"energy counter steps every {period * 1e3:.0f} ms" if period else "energy counter present (step period not probed)")
    return passed(AREA, "NVML", f"driver {driver}; {', '.join(found)}; {energy}")


def _tf32() -> Check:
    from bench.backends.onnxruntime.session import provider_options
    from bench.backends.base import Target
    from bench.model.dtypes import apply_tf32_policy, torch_tf32_state

    apply_tf32_policy("fp32", force=True)
    state = torch_tf32_state()
    ort_options = provider_options(Target("cuda:0", "fp32", 1))
    if state["cuda_matmul_allow_tf32"] or state["cudnn_allow_tf32"] or ort_options["use_tf32"] != "0":
        return failed(AREA, "TF32 policy", f"fp32 is not IEEE float32: torch {state}, ORT {ort_options}")
    return passed(AREA, "TF32 policy", "fp32: TF32 off in torch (matmul precision 'highest', cuDNN) and ORT "
                                       "(use_tf32=0); dtype tf32 turns it on for both")
