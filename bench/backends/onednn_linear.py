"""Linears on oneDNN in eager PyTorch: each nn.Linear's weight prepacked once into oneDNN's blocked layout, then run
by torch.ops.mkldnn._linear_pointwise (the op inductor's freezing emits for oneDNN), so eager's linears stop going
through torch's BLAS. On an AMD EPYC torch's fp32 BLAS (MKL) ran at half oneDNN's speed; this is the eager path a
user would take there. CPU only, fp32 and bf16 (where oneDNN has bf16 kernels); anything else is a SkipCell."""

from __future__ import annotations

import torch
from torch import nn

from bench.backends.base import SkipCell, Target


class OneDNNLinear(nn.Module):
    """nn.Linear's forward on a prepacked oneDNN weight; the original weight is kept for counting and export."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight  # counted by the cost model (nonzeros, bytes), never run
        self.bias = linear.bias
        with torch.no_grad():
            self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None),
                                 persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def check_onednn(target: Target) -> None:
    if target.is_cuda:
        raise SkipCell("backend.eager.linears = 'onednn' runs on CPU only")
    if not torch.backends.mkldnn.is_available():
        raise SkipCell("torch was built without oneDNN (backend.eager.linears = 'onednn')")
    if target.dtype == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise SkipCell("oneDNN has no bf16 kernels on this CPU (backend.eager.linears = 'onednn')")
    if target.dtype not in ("fp32", "bf16"):
        raise SkipCell(f"oneDNN linears run fp32 and bf16, not {target.dtype} (backend.eager.linears = 'onednn')")


def onednn_linears(module: nn.Module) -> int:
    """Replace every plain nn.Linear in `module` by a OneDNNLinear, in place; returns how many were replaced. Linears
    with a sparse or otherwise non-strided weight (a realised sparse kernel), or a quantized one (a tensor subclass:
    torchao's int8 or fp8), are left to their own kernel."""
    replaced = 0
    for name, child in list(module.named_children()):
        if (type(child) is nn.Linear and child.weight.layout == torch.strided
                and type(child.weight) is nn.Parameter):
            setattr(module, name, OneDNNLinear(child))
            replaced += 1
        else:
            replaced += onednn_linears(child)
    return replaced
