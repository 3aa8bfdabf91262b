"""Realisation: how a sparse variant's zeros run on one backend and target, decided before the backend prepares it.

    realize_<method>(model, target, backend) -> (model to prepare, record fields)

The fields are `speedup_mechanism` (none | smaller_gemm | sparse_tensor_cores) and
`speedup_mechanism_reason`. Backends never learn how a variant was made: they receive a module.

- unstructured: zeros in dense kernels everywhere (`none`). ONNX Runtime densifies sparse initializers and
  no backend here has a kernel that is faster at these densities.
- structured: smaller dense shapes on every backend (`smaller_gemm`).
- semi24: on CUDA in fp16/bf16 with compute capability >= 8.0, for eager and compile, the 2:4 decoder linears
  become torch.sparse semi-structured tensors (`sparse_tensor_cores`, cuSPARSELt unless torch is told to use
  CUTLASS); elsewhere the zeros run dense (`none`, with the reason). The conversion happens when the backend
  places its copy of the model on the GPU in the cell's dtype (`SemiStructuredLinear._apply`): the sweep's
  model stays a plain fp32 module, and the backend's own placement is all that is needed.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError
from sparsify.masks import is_semi24
from sparsify.targets import decoder_linears

HALF = (torch.float16, torch.bfloat16)


def _fields(mechanism: str, reason: str) -> dict[str, Any]:
    return {"speedup_mechanism": mechanism, "speedup_mechanism_reason": reason}


def realize_unstructured(model: nn.Module, target, backend: str) -> tuple[nn.Module, dict[str, Any]]:
    where = ("ONNX Runtime densifies sparse initializers and runs dense GEMMs" if backend == "onnxruntime"
             else f"{backend} on {target.device} runs dense GEMMs")
    return model, _fields("none", f"unstructured zeros are multiplied like any weight: {where}; a masked-dense control")


def realize_structured(model: nn.Module, target, backend: str) -> tuple[nn.Module, dict[str, Any]]:
    return model, _fields("smaller_gemm", "heads and FFN channels removed: smaller dense GEMMs on every backend")


def realize_semi24(model: nn.Module, target, backend: str) -> tuple[nn.Module, dict[str, Any]]:
    reason = semi24_unsupported(target, backend)
    if reason:
        return model, _fields("none", f"2:4 zeros run through dense kernels: {reason}")
    dtype = target.torch_dtype
    check_kernel_shapes(model, dtype)
    realized = copy.deepcopy(model)
    for name, linear in decoder_linears(realized).items():
        if not is_semi24(linear.weight):
            raise BenchError(f"semi24 variant has a decoder linear that is not 2:4 sparse ({name}); rebuild the artifact")
        linear.__class__ = SemiStructuredLinear
    kernel = _kernel_class().BACKEND
    return realized, _fields("sparse_tensor_cores", f"decoder linears as torch.sparse 2:4 semi-structured tensors ({kernel})")


def semi24_unsupported(target, backend: str) -> str | None:
    """Why 2:4 sparse tensor cores cannot serve this cell, or None when they can."""
    if backend == "onnxruntime":
        return "ONNX Runtime has no 2:4 sparse kernels (it densifies sparse initializers)"
    if not target.device.startswith("cuda"):
        return f"2:4 sparse tensor cores are CUDA-only (torch.sparse.to_sparse_semi_structured); none on {target.device}"
    if target.dtype not in ("fp16", "bf16"):
        return f"torch.sparse 2:4 kernels need fp16 or bf16; {target.dtype} runs dense"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    capability = torch.cuda.get_device_capability(target.torch_device)
    if capability < (8, 0):
        return f"compute capability {capability[0]}.{capability[1]} < 8.0: this GPU has no sparse tensor cores"
    return None


def _kernel_class():
    from torch.sparse import SparseSemiStructuredTensor, SparseSemiStructuredTensorCUSPARSELT, SparseSemiStructuredTensorCUTLASS

    # The class torch.sparse.to_sparse_semi_structured picks: cuSPARSELt unless CUTLASS is forced. A CUDA torch
    # built without cuSPARSELt gets torch's other 2:4 kernel, CUTLASS, rather than a conversion that fails.
    if torch.cuda.is_available() and not torch.backends.cusparselt.is_available():
        SparseSemiStructuredTensor._FORCE_CUTLASS = True
    return SparseSemiStructuredTensorCUTLASS if SparseSemiStructuredTensor._FORCE_CUTLASS else SparseSemiStructuredTensorCUSPARSELT


def kernel_shape_problems(model: nn.Module, dtype: torch.dtype) -> list[str]:
    """Decoder linears whose weight [out, in] the 2:4 kernel cannot take in `dtype`, per torch's own table
    (_DTYPE_SHAPE_CONSTRAINTS: both dims at least, and multiples of, sparse_min_rows x sparse_min_cols;
    cuSPARSELt fp16/bf16: 16 x 16; CUTLASS fp16/bf16: 32 x 64)."""
    kernel = _kernel_class()
    limits = kernel._DTYPE_SHAPE_CONSTRAINTS.get(dtype)
    if limits is None:
        return [f"dtype {dtype} (the {kernel.BACKEND} kernel takes {', '.join(map(str, kernel._DTYPE_SHAPE_CONSTRAINTS))})"]
    rows, cols = limits.sparse_min_rows, limits.sparse_min_cols
    return [
        f"{name}.weight is {list(linear.weight.shape)} (needs rows a multiple of {rows} and columns of {cols}, {kernel.BACKEND})"
        for name, linear in decoder_linears(model).items()
        if linear.out_features % rows or linear.in_features % cols or linear.out_features < rows or linear.in_features < cols
    ]


def check_kernel_shapes(model: nn.Module, dtype: torch.dtype) -> None:
    problems = kernel_shape_problems(model, dtype)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BenchError(f"2:4 sparse tensor cores cannot take this model's shapes: {problems[0]}{more}")


class SemiStructuredLinear(nn.Linear):
    """An nn.Linear whose 2:4 weight becomes a SparseSemiStructuredTensor once placed on CUDA in fp16/bf16."""

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        weight = self.weight
        if weight.is_cuda and weight.dtype in HALF and not isinstance(weight, torch.sparse.SparseSemiStructuredTensor):
            from torch.sparse import to_sparse_semi_structured

            self.weight = nn.Parameter(to_sparse_semi_structured(weight.detach().contiguous()), requires_grad=False)
        return self
