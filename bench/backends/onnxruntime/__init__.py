"""ONNX Runtime: the model exported with torch.onnx (dynamo), cached by weights digest, run by an InferenceSession
on the target's execution provider, with no fallback to another provider (runner.py, export.py, session.py)."""

from typing import Literal

from pydantic import Field

from bench.plugins.spec import BackendSpec, Strict, Style


class OnnxRuntimeOptions(Strict):
    # Opset 23: torch exports SDPA as the standard onnx::Attention op, which ONNX Runtime runs as one kernel, and
    # GELU as one op that ORT fuses with the bias before it (BiasGelu). At 18, both are decomposed into MatMul,
    # Softmax and Erf arithmetic that ORT's optimiser does not fuse back.
    opset: int = Field(23, ge=17, description="ONNX opset of the export (23: one Attention op)")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="ONNX Runtime's graph optimisation level")
    # ORT's intra-op threads spin for tens of ms after each run; an idle cell's spinning would steal the CPU from
    # the cell timed next. Off by default in interleaved measurement; recorded either way.
    intra_op_spinning: bool = Field(False, description="let ORT's intra-op threads spin between runs")
    # Residual Add + LayerNormalization -> SkipLayerNormalization before ORT's optimiser (onnxscript's rewriter).
    # auto: on CUDA only. ORT's CPU kernel for it was measured slower than the ops it replaces.
    skip_layer_norm: Literal["auto", "on", "off"] = Field(
        "auto", description="fuse residual Add + LayerNorm into SkipLayerNormalization (auto: on CUDA only)")


def unavailable() -> str | None:
    """Why ONNX Runtime cannot run here, without importing it (importing writes under ~/.cache)."""
    from importlib.util import find_spec

    return None if find_spec("onnxruntime") else "onnxruntime is not installed (pip install 'xglm-bench[cpu]' or '[gpu]')"


SPEC = BackendSpec(
    name="onnxruntime", prepare="bench.backends.onnxruntime.runner:prepare", options=OnnxRuntimeOptions,
    description="ONNX Runtime on the target's execution provider (CPU or CUDA), from a cached torch.onnx export",
    available="bench.backends.onnxruntime:unavailable", uses_export_cache=True,
    style=Style("ONNX Runtime", marker="s", line="--"),
)
