"""torch.compile (inductor): compile time recorded apart, never eager code under the label (runner.py)."""

from typing import Literal

from pydantic import Field

from bench.plugins.spec import BackendSpec, Strict, Style

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileOptions(Strict):
    mode: Literal[COMPILE_MODES] = Field("default", description="the mode of backend 'compile'; 'compile:<mode>' names its own")
    dynamic: bool | None = Field(None, description="torch.compile's dynamic: None lets dynamo decide, true marks every dim dynamic")
    fullgraph: bool = Field(False, description="fail on a graph break instead of splitting the graph")


SPEC = BackendSpec(
    name="compile", prepare="bench.backends.compile.runner:prepare", options=CompileOptions, modes=COMPILE_MODES,
    description="torch.compile with inductor; `compile:<mode>` measures a mode as a backend of its own",
    style=Style("torch.compile", marker="^", line=":"),
)
