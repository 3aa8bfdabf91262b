"""The GEMM libraries a machine has, each timed on the same square product: the machine's peak is the best of them.

A peak measured with one library is not the machine's peak: on a 2-vCPU AMD EPYC, torch's F.linear went to MKL at
75 GFLOP/s while oneDNN and ONNX Runtime's MLAS ran at 164-166, and ONNX Runtime cells then showed 187 % "of
peak". So every library is timed, each figure recorded, the best kept. Libraries per device:
- cpu: `torch` (torch's default path, F.linear: MKL or OpenBLAS), `onednn` (torch.ops.mkldnn with the weight
  prepacked, as inductor's freezing and eager's onednn option run linears), `mlas` (ONNX Runtime's MatMul).
- cuda: `torch` (cuBLAS/cuBLASLt through torch.mm).
A library that cannot run a dtype here is left out (with the reason under `gemm_skipped`), never stood in for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bench.measure.timing import time_iterations

LIBRARIES = {"cpu": ("torch", "onednn", "mlas"), "cuda": ("torch",)}


def torch_library(device: str) -> str:
    """The name of torch's default GEMM library on `device`: cublas on CUDA, else its BLAS (mkl, openblas...)."""
    if device.startswith("cuda"):
        return "cublas"
    import re

    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else "torch"


def library_name(library: str, device: str) -> str:
    """The recorded name of a library key: 'torch' is named by what torch dispatches fp32 linears to."""
    return torch_library(device) if library == "torch" else library


def gemm_product(library: str, n: int, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    """One n x n x n product on `library`, inputs made and weights prepacked outside the timing. Raises
    RuntimeError when the library cannot run this dtype here."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    if library == "torch":
        return lambda: torch.nn.functional.linear(a, b)
    if library == "onednn":
        if not torch.backends.mkldnn.is_available():
            raise RuntimeError("torch was built without oneDNN")
        if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise RuntimeError("oneDNN has no bf16 kernels on this CPU")
        if dtype not in (torch.float32, torch.bfloat16):
            raise RuntimeError(f"oneDNN linear does not run {dtype} here")
        packed = torch.ops.mkldnn._reorder_linear_weight(b, n)
        return lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
    if library == "mlas":
        return _ort_matmul(a, b)
    raise ValueError(f"unknown GEMM library {library!r}")


def _ort_matmul(a: torch.Tensor, b: torch.Tensor) -> Callable[[], Any]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    if a.dtype != torch.float32:
        raise RuntimeError(f"ONNX Runtime's CPU MatMul is timed in fp32 only (not {a.dtype})")
    n = a.shape[0]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(b.T.contiguous().numpy(), "w")])
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same threads as torch's libraries
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)  # ORT reads <= 13
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": a.numpy()}
    return lambda: session.run(None, feed)


def library_tflops(device: str, dtype: torch.dtype, n: int, synchronize: Callable[[], None]) -> tuple[dict[str, float], dict[str, str]]:
    """TFLOP/s of each library (best of its repetitions) and why any was left out. The libraries' blocks are
    interleaved (three rounds, round-robin) so that a burst of load on a shared machine does not fall on one."""
    kind = device.partition(":")[0]
    products, skipped = {}, {}
    for library in LIBRARIES[kind]:
        try:
            products[library] = gemm_product(library, n, dtype, device)
        except Exception as exc:
            skipped[library] = f"{type(exc).__name__}: {exc}"
    best: dict[str, float] = {}
    for _ in range(3):
        for library, product in list(products.items()):
            try:
                samples = time_iterations(product, synchronize=synchronize, cuda_events=kind == "cuda", warmup=2,
                                          min_iters=5, min_time_s=0.2, max_time_s=10.0)
            except Exception as exc:
                skipped[library] = f"{type(exc).__name__}: {exc}"
                products.pop(library)
                best.pop(library, None)
                continue
            best[library] = max(best.get(library, 0.0), 2 * n**3 / (samples.min() / 1e9) / 1e12)
    name = {library: library_name(library, device) for library in LIBRARIES[kind]}
    return {name[k]: v for k, v in best.items()}, {name[k]: v for k, v in skipped.items()}


# Vector lanes per fp32 FMA by the widest ISA the flags show; FMA units per core are not readable from the OS, so
# the theoretical peak assumes two (every AVX2/AVX-512 server core since Haswell and Zen 2 has two; some Xeon
# Silver/Bronze have one AVX-512 unit) and says so.
_FP32_LANES = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("sse2", 4))
FMA_UNITS_ASSUMED = 2


def theoretical_cpu_tflops_fp32(threads: int) -> dict[str, Any]:
    """FMA units x lanes x 2 FLOPs x clock x cores, where the ISA and the clock can be read; else None with why."""
    from bench.measure.cpu_info import _cpu_mhz, topology
    from bench.measure.device import _cpuinfo_value

    try:
        flags = set(_cpuinfo_value("flags").split())
    except Exception:
        return {"peak_tflops_fp32_theoretical": None, "theoretical_note": "CPU flags not readable"}
    lanes = next((n for flag, n in _FP32_LANES if flag in flags), None)
    mhz = _cpu_mhz()
    if lanes is None or mhz is None or "fma" not in flags and lanes > 4:
        return {"peak_tflops_fp32_theoretical": None, "theoretical_note": "ISA or clock not readable"}
    per_core = topology().get("cpu_threads_per_core") or 1
    cores = max(1, threads // per_core) if per_core > 1 else threads  # SMT siblings share the FMA units
    tflops = FMA_UNITS_ASSUMED * lanes * 2 * mhz * 1e6 * cores / 1e12
    return {"peak_tflops_fp32_theoretical": tflops,
            "theoretical_note": f"{FMA_UNITS_ASSUMED} FMA units (assumed) x {lanes} fp32 lanes x 2 x {mhz:.0f} MHz "
                                f"x {cores} core(s); nominal clock, turbo not counted"}
