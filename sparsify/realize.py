"""Realisation: how a sparse variant's zeros run on one backend and target, decided before the backend prepares it.

    realize_<method>(model, target, backend, options) -> (model to prepare, record fields)

`options` are the cell's realisation options (sparsify.realize_kernels.RealizeOptions: the kernel, and what
`auto` needs). The fields are `speedup_mechanism` (none | smaller_gemm | sparse_kernel | sparse_tensor_cores),
`speedup_mechanism_reason` and the sparse-kernel fields. Backends never learn how a variant was made: they
receive a module.

- unstructured, block, semi24: the masked weights run on the cell's kernel (sparsify.realize_kernels): `dense`
  (zeros in dense kernels, the masked-dense control), `csr`, `bsr`, `2:4` or `auto`.
- structured: smaller dense shapes on every backend (`smaller_gemm`).
- 2:4 (semi24): on CUDA in fp16/bf16 with compute capability >= 8.0, for eager and compile, the 2:4 decoder
  linears become torch.sparse semi-structured tensors (`sparse_tensor_cores`, cuSPARSELt unless torch is told to
  use CUTLASS). The conversion happens when the backend places its copy of the model on the GPU in the cell's
  dtype (`SemiStructuredLinear._apply`): the model stays a plain fp32 module until then.
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


def realize_structured(model: nn.Module, target, backend: str, options=None) -> tuple[nn.Module, dict[str, Any]]:
    return model, _fields("smaller_gemm", "heads and FFN channels removed: smaller dense GEMMs on every backend")


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
