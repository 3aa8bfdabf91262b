"""Eager PyTorch: the model as it is, on the target's device and dtype; the reference every backend is compared to.
`eager:onednn` runs every linear on oneDNN with its weight prepacked (runner.py, onednn_linear.py)."""

from typing import Literal

from pydantic import Field

from bench.backends.variant_spec import VariantBackendSpec
from bench.plugins.spec import Strict, Style


class EagerOptions(Strict):
    # default: nn.Linear as torch dispatches it (fp32 on CPU: its BLAS, MKL or OpenBLAS). onednn: every linear runs
    # torch.ops.mkldnn._linear_pointwise on a weight prepacked once (CPU, fp32/bf16), the library that ran 2.2x
    # faster than MKL on an AMD EPYC (issue 26). The default stays until measured faster and equal here.
    linears: Literal["default", "onednn"] = Field("default", description="the library eager's linears run on")


SPEC = VariantBackendSpec(
    name="eager", prepare="bench.backends.eager.runner:prepare", options=EagerOptions, modes=("onednn",),
    variants={"onednn": {"linears": "onednn"}},
    description="eager PyTorch: the module as it is, placed on the target's device in its dtype",
    style=Style("eager", marker="o", line="-"),
)
