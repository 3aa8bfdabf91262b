"""torch.compile (inductor): compile time recorded apart, never eager code under the label (runner.py)."""

from typing import Literal

from pydantic import Field

from bench.backends.variant_spec import VariantBackendSpec
from bench.plugins.spec import Strict, Style

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileOptions(Strict):
    mode: Literal[COMPILE_MODES] = Field("default", description="the mode of backend 'compile'; 'compile:<mode>' names its own")
    dynamic: bool | None = Field(None, description="torch.compile's dynamic: None lets dynamo decide, true marks every dim dynamic")
    fullgraph: bool = Field(False, description="fail on a graph break instead of splitting the graph")
    # inductor's freezing: weights become constants and CPU linears are prepacked (MKL's packed GEMM for fp32 where
    # torch has MKL and the batch is static, else oneDNN). `compile:freezing` measures it beside plain compile.
    freezing: bool = Field(False, description="inductor's freezing (weights prepacked for the CPU's GEMM library)")


SPEC = VariantBackendSpec(
    name="compile", prepare="bench.backends.compile.runner:prepare", options=CompileOptions,
    modes=(*COMPILE_MODES, "freezing"), variants={"freezing": {"freezing": True}},
    description="torch.compile with inductor; `compile:<mode>` measures a mode as a backend of its own",
    style=Style("torch.compile", marker="^", line=":"),
)
