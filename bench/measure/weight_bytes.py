"""Bytes of a module's weights as the realised model holds them: every parameter and persistent buffer once
(shared tensors counted once), a compressed sparse weight as its values plus its int32 indices.

With `dtype`, floating-point tensors are counted at that dtype (what a backend will hold after placing the model
in the cell's dtype); integer tensors (sparse indices, and quantized weights) always at their own size.

Quantized linears (bench.plugins.precision): torchao's weights are tensor subclasses, counted as the tensors they hold
(int8 values, scales, zero points); torch.ao's dynamic linears hold their weight packed outside the parameters,
counted as its int8 values plus a float32 scale and an int32 zero point per output channel, and the bias (the
packing's padding is not counted).
"""

from __future__ import annotations

import torch
from torch import nn


def weight_bytes(module: nn.Module, dtype: torch.dtype | None = None) -> int:
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}.values()
    # torch.ao's LinearPackedParams holds the packed script object; the quantized linear holding it is not counted again
    packed = sum(_packed_bytes(m, dtype) for m in module.modules()
                 if hasattr(m, "_packed_params") and not isinstance(m._packed_params, nn.Module))
    return sum(_bytes(t, dtype) for t in tensors) + packed


def _packed_bytes(module: nn.Module, dtype: torch.dtype | None) -> int:
    """A torch.ao quantized linear's packed weight: int8 values, scale (fp32) and zero point (int32) per channel."""
    weight, bias = module._weight_bias()
    channels = weight.shape[0]
    return weight.numel() * weight.element_size() + 8 * channels + (0 if bias is None else _bytes(bias, dtype))


def _bytes(tensor: torch.Tensor, dtype: torch.dtype | None) -> int:
    if tensor.layout in (torch.sparse_csr, torch.sparse_bsr):
        return sum(_bytes(part, dtype) for part in (tensor.crow_indices(), tensor.col_indices(), tensor.values()))
    if tensor.layout == torch.sparse_coo:
        return _bytes(tensor._indices(), dtype) + _bytes(tensor._values(), dtype)
    if type(tensor) not in (torch.Tensor, nn.Parameter) and hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()  # a quantized tensor subclass (torchao): the tensors it holds
        return sum(_bytes(getattr(tensor, name), dtype) for name in names)
    size = torch.empty((), dtype=dtype).element_size() if dtype is not None and tensor.is_floating_point() else tensor.element_size()
    return tensor.numel() * size
