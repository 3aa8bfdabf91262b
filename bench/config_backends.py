"""Sweep config sections about how each backend runs: [backend], [backend.compile], [backend.onnxruntime], and the
names `measure.backends` accepts.

A backend name is a kind, optionally with a variant after a colon: `eager`, `onnxruntime`, `compile` (in
`backend.compile.mode`) and `compile:<mode>`, so that one sweep can measure several compile modes as separate
backends, each a cell of its own with its own compile time and recompile count. Kept apart from bench.config
(which holds these as fields) so that each module stays readable in one sitting.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bench.errors import did_you_mean

BACKEND_KINDS = ("eager", "compile", "onnxruntime")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# The variants a backend name may carry after its colon, each the options it sets on its kind's options model, so
# that one sweep measures a fast path interleaved with the plain backend: the CPU fast paths are oneDNN linears in
# eager and inductor's freezing (`compile:max-autotune` is a mode like the others).
NAME_VARIANTS: dict[str, dict[str, dict[str, object]]] = {
    "eager": {"onednn": {"linears": "onednn"}},
    "compile": {**{mode: {"mode": mode} for mode in COMPILE_MODES}, "freezing": {"freezing": True}},
}


def backend_names() -> list[str]:
    """Every name `measure.backends` accepts."""
    return ["eager", *(f"eager:{v}" for v in NAME_VARIANTS["eager"]), "compile",
            *(f"compile:{v}" for v in NAME_VARIANTS["compile"]), "onnxruntime"]


def name_options(name: str, options: BackendOptions) -> BackendOptions:
    """The options a backend name runs with: its variant's settings on its kind's options ('compile:freezing' ->
    backend.compile.freezing = true)."""
    kind, _, variant = name.partition(":")
    if not variant:
        return options
    own = getattr(options, kind)
    return options.model_copy(update={kind: own.model_copy(update=NAME_VARIANTS[kind][variant])})


def backend_kind(name: str) -> str:
    """The backend module a name runs on: 'compile:max-autotune' -> 'compile'."""
    return name.partition(":")[0]


def check_backend_name(name: str) -> str:
    names = backend_names()
    if name in names:
        return name
    started = [n for n in names if name and n.startswith(name)]  # 'onnx' -> 'onnxruntime', which difflib misses
    if len(started) == 1:
        raise ValueError(f"unknown backend '{name}'; did you mean '{started[0]}'? available: {', '.join(names)}")
    raise ValueError(did_you_mean(name, names, "backend"))


BackendName = Annotated[str, AfterValidator(check_backend_name)]


class EagerOptions(_Strict):
    # default: nn.Linear as torch dispatches it (fp32 on CPU: its BLAS, MKL or OpenBLAS). onednn: every linear runs
    # torch.ops.mkldnn._linear_pointwise on a weight prepacked once (CPU, fp32/bf16), the library that ran 2.2x
    # faster than MKL on an AMD EPYC. Default unchanged: on the Intel Xeon measured it was no faster (README).
    linears: Literal["default", "onednn"] = "default"


class CompileOptions(_Strict):
    mode: CompileMode = Field("default", description="the mode of backend 'compile'; 'compile:<mode>' names its own")
    dynamic: bool | None = None
    fullgraph: bool = False
    # inductor's freezing: weights become constants and CPU linears are prepacked (MKL's packed GEMM for fp32 where
    # torch has MKL and the batch is static, else oneDNN). Off by default: measured no faster on the Intel Xeon.
    freezing: bool = False


class OnnxRuntimeOptions(_Strict):
    # Opset 23: torch exports SDPA as the standard onnx::Attention op, which ONNX Runtime runs as one kernel, and
    # GELU as one op that ORT fuses with the bias before it (BiasGelu). At 18, both are decomposed into MatMul,
    # Softmax and Erf arithmetic that ORT's optimiser does not fuse back.
    opset: int = Field(23, ge=17)
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    # ORT's intra-op threads spin for tens of ms after each run; an idle cell's spinning would steal the CPU from
    # the cell timed next. Off by default in interleaved measurement; recorded either way.
    intra_op_spinning: bool = False
    # Residual Add + LayerNormalization -> SkipLayerNormalization before ORT's optimiser (onnxscript's rewriter).
    # auto: on CUDA only. ORT's CPU kernel for it was measured slower than the ops it replaces (README).
    skip_layer_norm: Literal["auto", "on", "off"] = "auto"


class BackendOptions(_Strict):
    eager: EagerOptions = Field(default_factory=EagerOptions)
    compile: CompileOptions = Field(default_factory=CompileOptions)
    onnxruntime: OnnxRuntimeOptions = Field(default_factory=OnnxRuntimeOptions)
    # causal: no padding mask where none is needed (right padding, last real token pooled): is_causal, or the
    # bottom-right causal mask with a prefix. masked: the [B, 1, T, P+T] padding mask on every path.
    attention: Literal["causal", "masked"] = "causal"
