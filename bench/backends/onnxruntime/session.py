"""ONNX Runtime sessions that run where they were asked to, or say why not.

ONNX Runtime falls back silently in three places, and each would put a CPU time under a CUDA label:
- the Python InferenceSession retries on the CPU provider when the CUDA provider fails to load (a CUDA or cuDNN
  mismatch) and again when a run hits an EP failure: `enable_fallback=0` turns both off;
- a provider library that does not load leaves the session on CPUExecutionProvider: `session.get_providers()` is
  checked against the request (`check_providers`);
- nodes without a kernel for a dtype on the CUDA provider are placed on the CPU provider (with copies around
  them): one profiled run lists every node's provider (`node_placement`), and floating-point compute on the CPU
  is refused (`check_placement`). Shape arithmetic on int64 stays on the CPU by ORT's own design and is fine.

The CUDA provider gets the cell's device (`device_id`, a CUDA runtime index like torch's) and the TF32 policy
(`use_tf32`, on by default in ORT, off here except for dtype tf32).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench.backends.base import SkipCell, Target
from bench.model.dtypes import uses_tf32

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
FLOAT_TYPES = {"float", "float16", "bfloat16", "double"}
# Ops that carry the model's compute: one of these on the CPU makes a CUDA cell a CPU cell. Other floating-point
# nodes on the CPU (an elementwise op, a Cast) are recorded in `ort_cpu_float_ops`, not refused.
COMPUTE_OPS = {
    "MatMul", "Gemm", "FusedMatMul", "Softmax", "LayerNormalization", "SkipLayerNormalization",
    "SimplifiedLayerNormalization", "Attention", "MultiHeadAttention", "GroupQueryAttention", "BiasGelu", "FastGelu",
    "Gelu", "Erf", "Einsum",
}


def requested_provider(target: Target) -> str:
    return PROVIDERS["cuda" if target.is_cuda else "cpu"]


def provider_options(target: Target) -> dict[str, str]:
    """The CUDA provider's options for this cell: its device and the TF32 policy; none for the CPU provider."""
    if not target.is_cuda:
        return {}
    return {"device_id": str(target.cuda_index), "use_tf32": "1" if uses_tf32(target.dtype) else "0"}


def preload_cuda_libraries(ort: Any) -> str:
    """onnxruntime.preload_dlls() (ORT >= 1.21) loads the CUDA and cuDNN libraries ORT was built for from the nvidia
    wheels, so the CUDA provider does not fail (and fall back) on a library torch did not bring. What it did is
    recorded; it prints its own notes, which are kept out of the terminal."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return f"not available in onnxruntime {ort.__version__}"
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            preload()
    except Exception as exc:  # a missing wheel is the provider check's business, with a clearer message
        return f"failed: {type(exc).__name__}: {exc}"
    note = " ".join(chatter.getvalue().split())
    return "called" + (f" ({note[:200]})" if note else "")


def session_options(ort: Any, target: Target, graph_optimization: str, profile_prefix: Path, *, spinning: bool = False) -> Any:
    """Threads (no spinning unless asked: idle workers take no CPU), graph optimisation, and profiling of the first
    run only (for `node_placement`)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[graph_optimization])
    so.intra_op_num_threads = target.threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    so.enable_profiling = True  # ended after one run: later runs are not profiled
    so.profile_file_prefix = str(profile_prefix)
    return so


def create_session(ort: Any, path: Path, target: Target, so: Any) -> Any:
    """An InferenceSession on the requested provider only, without the Python API's silent CPU fallback; raises
    SkipCell when the provider cannot be had or cannot run this graph in this dtype."""
    provider = requested_provider(target)
    providers = [(provider, provider_options(target))] if target.is_cuda else [provider]
    try:
        session = ort.InferenceSession(str(path), sess_options=so, providers=providers, enable_fallback=0)
    except Exception as exc:
        message = " ".join(str(exc).split())
        if "NOT_IMPLEMENTED" in message or "Could not find an implementation" in message:
            raise SkipCell(f"ONNX Runtime {ort.__version__} has no {provider} kernels for this graph in "
                           f"{target.dtype}: {message[:300]}") from None
        if any(word in message for word in ("CUDA", "cuda", "cuDNN", "cudnn", "ExecutionProvider", "EP Error")):
            raise SkipCell(f"ONNX Runtime {ort.__version__} could not create a session on {provider}: {message[:300]}") from None
        raise  # anything else is the graph's or the harness's fault: a failed cell, not a skipped one
    check_providers(session.get_providers(), provider, ort.__version__)
    return session


def check_providers(got: list[str], requested: str, version: str = "?") -> None:
    """The session must run on the provider that was asked for (the CPU one is always registered beside it)."""
    if requested not in got:
        raise SkipCell(f"the ONNX Runtime {version} session did not get {requested} (it got {', '.join(got) or 'none'}): "
                       "a CUDA/cuDNN mismatch or a missing onnxruntime-gpu; see `bench doctor`")


def node_placement(profile_path: str | Path) -> dict[str, Any]:
    """Which provider ran each node in a profiled run: counts per provider, and the CPU nodes that wrote
    floating-point tensors (op type -> count). Reads ORT's profile (a Chrome trace: events of category "Node" with
    args.provider, args.op_name, args.input_type_shape and args.output_type_shape)."""
    events = json.loads(Path(profile_path).read_text())
    providers: Counter[str] = Counter()
    cpu_float: Counter[str] = Counter()
    seen: set[str] = set()
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") != "Node" or "provider" not in args or event.get("name") in seen:
            continue
        seen.add(event.get("name"))
        providers[args["provider"]] += 1
        if args["provider"] == "CPUExecutionProvider" and _moves_floats(args):
            cpu_float[args.get("op_name", "?")] += 1
    return {"nodes_by_provider": dict(providers), "cpu_float_ops": dict(cpu_float)}


def _moves_floats(args: dict[str, Any]) -> bool:
    """A node that writes a floating-point tensor (Shape only reads a float input's metadata: not counted)."""
    return any(isinstance(entry, dict) and FLOAT_TYPES & set(entry) for entry in args.get("output_type_shape") or [])


def check_placement(placement: dict[str, Any], target: Target) -> None:
    """A CUDA cell whose floating-point compute runs on the CPU is not a CUDA cell: refuse it with the ops."""
    if not target.is_cuda:
        return
    compute = {op: n for op, n in placement["cpu_float_ops"].items() if op in COMPUTE_OPS}
    if compute:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(compute.items()))
        raise SkipCell(f"ONNX Runtime's CUDA provider has no {target.dtype} kernels for part of this graph; these "
                       f"nodes would run on the CPU: {ops}")


def placement_fields(placement: dict[str, Any]) -> dict[str, Any]:
    return {"ort_nodes_by_provider": placement["nodes_by_provider"], "ort_cpu_float_ops": placement["cpu_float_ops"]}
