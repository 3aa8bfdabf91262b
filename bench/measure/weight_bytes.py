"""Bytes of a module's weights as the realised model holds them: every parameter and persistent buffer once
(shared tensors counted once), a compressed sparse weight as its values plus its int32 indices.

With `dtype`, floating-point tensors are counted at that dtype (what a backend will hold after placing the model
in the cell's dtype); integer tensors (sparse indices, and quantized weights) always at their own size.
"""

from __future__ import annotations

import torch
from torch import nn


def weight_bytes(module: nn.Module, dtype: torch.dtype | None = None) -> int:
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}.values()
    return sum(_bytes(t, dtype) for t in tensors)


def _bytes(tensor: torch.Tensor, dtype: torch.dtype | None) -> int:
    if tensor.layout in (torch.sparse_csr, torch.sparse_bsr):
        return sum(_bytes(part, dtype) for part in (tensor.crow_indices(), tensor.col_indices(), tensor.values()))
    if tensor.layout == torch.sparse_coo:
        return _bytes(tensor._indices(), dtype) + _bytes(tensor._values(), dtype)
    size = torch.empty((), dtype=dtype).element_size() if dtype is not None and tensor.is_floating_point() else tensor.element_size()
    return tensor.numel() * size
