"""An ONNX model as ONNX Runtime's users deploy it: exported, fused, optimised offline for one provider, in one
directory that can be kept and loaded again (`export_for_ort`, `OrtExport.load`).

The steps (docs/backends.md, "ONNX Runtime as deployed"; each measured by benchmarks/ort_fusions.py, figures in CHANGELOG.md):
1. torch.onnx.export(dynamo=True), dynamic batch and sequence. At opset >= 23 torch writes SDPA as the standard
   onnx::Attention op (one ORT kernel instead of MatMul, Softmax and mask arithmetic) and GELU as one op, which
   ORT's optimiser fuses with the bias before it (BiasGelu). The attention path of the model is exported as it is:
   `is_causal` (no mask input), a [T, P+T] causal mask, or the [B, 1, T, P+T] padding mask.
2. Optionally, residual Add + LayerNormalization -> SkipLayerNormalization (onnxscript's rewriter): ORT's level
   `all` fuses only the ones it recognises (one of 9 in the exported graph). Off on the CPU by default, where
   ORT's kernel was measured slower than the ops it replaces; on by default on CUDA.
3. ORT's own graph optimiser at the configured level, run once for the target's provider, the result saved
   (`optimized_model_filepath`): the graph every session of this export then loads without optimising again. Its
   operator counts are recorded (`ort_fused_ops`), so a record says which fusions its cell ran.

A directory is complete when `export.json` exists (written last): model.onnx(+.data) is step 1-2's graph,
model.ort.onnx(+.data) step 3's, and export.json records every file's size and sha256 (`files`), so that a kept
export can be checked before it is used. ORT's optimised graph is specific to the provider and ORT version it was
made with; bench.backends.onnxruntime.export_key says what else an export depends on, bench.backends.onnxruntime.export_cache keeps them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.backends.onnxruntime import session as ort_session
from bench.backends.base import Target
from bench.backends.onnxruntime.export_cache import sha256
from bench.measure.timing import stopwatch
from quantize.onnx_graph import INTEGER_OPS

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
EXPORTED, OPTIMIZED, MANIFEST = "model.onnx", "model.ort.onnx", "export.json"
# Operators whose counts say which fusions a graph got: fused kernels, and the unfused ops they replace.
FUSION_OPS = (
    "Attention", "MultiHeadAttention", "GroupQueryAttention", "BiasGelu", "FastGelu", "Gelu", "Erf",
    "SkipLayerNormalization", "LayerNormalization", "FusedMatMul", "MatMul", "Gemm", "Softmax",
    *INTEGER_OPS,  # a precision cell's quantized linears
)


@dataclass(frozen=True)
class OrtExport:
    directory: Path
    spec: dict[str, Any]  # what determines the files: opset, dtype, provider, level, fusions, versions
    fused_ops: dict[str, int]  # FUSION_OPS present in the optimised graph -> count
    seconds: dict[str, float] = field(default_factory=dict)  # export_s, fuse_s, optimize_s

    @property
    def model_path(self) -> Path:
        """What sessions load: ORT's optimised graph."""
        return self.directory / OPTIMIZED

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob(f"{OPTIMIZED}*"))

    @property
    def initializer_bytes(self) -> int:
        """Bytes of the optimised graph's initializers at their own types (int8 weights of a quantized graph at one
        byte each): the weights the session holds. Read from the graph's shapes, without loading the weights."""
        import onnx
        from onnx.helper import tensor_dtype_to_np_dtype

        graph = onnx.load(str(self.model_path), load_external_data=False).graph
        return sum(int(np.prod(t.dims, dtype=np.int64)) * tensor_dtype_to_np_dtype(t.data_type).itemsize
                   for t in graph.initializer)

    @classmethod
    def load(cls, directory: Path) -> OrtExport:
        """A finished export directory (its export.json is written last)."""
        manifest = json.loads((directory / MANIFEST).read_text())
        return cls(directory, manifest["spec"], manifest["fused_ops"], manifest["seconds"])


def skip_layer_norm_wanted(setting: str, target: Target) -> bool:
    return setting == "on" or (setting == "auto" and target.is_cuda)


def export_for_ort(model: torch.nn.Module, example, directory: Path, *, target: Target, opset: int,
                   graph_optimization: str, skip_layer_norm: bool, attention_path: str,
                   quantization: dict[str, Any] | None = None, manifest: dict[str, Any] | None = None) -> OrtExport:
    """Export `model` (already on the target's device and dtype, on `attention_path`), fuse, quantize its linears
    where the cell asks (`quantization`: quantize.realize.GraphRequest.key()), and optimise it for the target's
    provider, into `directory`; `manifest`: more fields for export.json (the cache's key). Raises SkipCell when the
    provider cannot be had."""
    import onnxruntime as ort

    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)  # the directory is incomplete until the end
    exported, optimized = directory / EXPORTED, directory / OPTIMIZED
    seconds: dict[str, float] = {}
    with stopwatch() as clock:
        export_onnx(model, example, exported, opset=opset, device=target.torch_device)
    seconds["export_s"] = clock.seconds
    if skip_layer_norm:
        with stopwatch() as clock:
            fuse_skip_layer_norm(exported)
        seconds["fuse_s"] = clock.seconds
    if quantization:
        from quantize.onnx_graph import quantize_graph

        with stopwatch() as clock:
            quantize_graph(exported, quantization["scheme"], tuple(quantization["linears"]))
        seconds["quantize_s"] = clock.seconds
    so = ort_session.session_options(ort, target, graph_optimization, directory / "ort-profile")
    so.enable_profiling = False
    so.optimized_model_filepath = str(optimized)
    # Weights in a file beside the graph: a 564M model in fp32 is beyond protobuf's 2 GB.
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", f"{OPTIMIZED}.data")
    so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    with stopwatch() as clock:
        ort_session.create_session(ort, exported, target, so)
    seconds["optimize_s"] = clock.seconds
    spec = {"opset": opset, "dtype": target.dtype, "provider": ort_session.requested_provider(target),
            "graph_optimization": graph_optimization, "skip_layer_norm": skip_layer_norm,
            "attention_path": attention_path, "quantization": quantization,
            "torch": torch.__version__, "onnxruntime": ort.__version__, "onnxscript": _version("onnxscript")}
    result = OrtExport(directory, spec, fused_op_counts(optimized), seconds)
    files = {f.name: {"bytes": f.stat().st_size, "sha256": sha256(f)}
             for f in sorted(directory.iterdir()) if f.is_file()}
    (directory / MANIFEST).write_text(json.dumps({"spec": spec, "fused_ops": result.fused_ops, "seconds": seconds,
                                                  "files": files, **(manifest or {})}, indent=2))
    return result


def export_onnx(model: torch.nn.Module, example, path: Path, *, opset: int, device: torch.device) -> None:
    """Export with dynamic batch and sequence axes; the exporter's chatter is kept out of the terminal."""
    batch, seq = torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC
    args = tuple(t.to(device) for t in example)
    chatter = io.StringIO()
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed", irrelevant to XGLM
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                model, args, str(path), dynamo=True, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                dynamic_shapes={name: {0: batch, 1: seq} for name in INPUT_NAMES},
                opset_version=opset, external_data=True, verbose=False,
            )
    except Exception as exc:
        tail = chatter.getvalue().strip().splitlines()[-3:]
        raise RuntimeError(f"ONNX export failed: {exc}" + (f" ({' | '.join(tail)})" if tail else "")) from exc
    finally:
        exporter_log.setLevel(level)


def fuse_skip_layer_norm(path: Path) -> int:
    """Residual Add (+ bias Add) + LayerNormalization -> com.microsoft::SkipLayerNormalization, in place; returns
    how many were fused."""
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions.skip_normalization import fuse_skip_layer_normalization

    model = ir.load(path)
    count = fuse_skip_layer_normalization(model)
    if count:
        model = ir.external_data.load_to_model(model)  # in memory, so that the data file can be rewritten
        ir.save(model, path, external_data=f"{path.name}.data")
    return int(count)


def fused_op_counts(path: Path) -> dict[str, int]:
    """FUSION_OPS in a graph file -> how often each occurs (absent ones left out)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    counts = Counter(node.op_type for node in graph.node)
    return {op: counts[op] for op in FUSION_OPS if counts[op]}


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
