"""A cell's precision, realised: `realize_precision(model, precision, target, backend_kind) -> (model, fields)`.

Eager and compile get the model with its decoder linears quantized (quantize.torch_linears); ONNX Runtime gets the
model unchanged with a `quantization` request its export applies to the graph (quantize.onnx_graph), since ORT's
quantizer works on ONNX, not on torch modules. A precision that cannot run where the cell runs raises
PrecisionSkipped: the cell is `skipped` with the reason, never run in fp32 under the precision's label.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import torch
from torch import nn

from bench.plugins.precision import QUANTIZED_LINEARS, SCHEMES, Library, unavailable
from sparsify.targets import decoder_linears


class PrecisionSkipped(Exception):
    """The cell's precision cannot run here; the message says why and what would."""


@dataclass(frozen=True)
class GraphRequest:
    """What the ONNX export quantizes: the scheme, and the module paths of the linears (matched to the graph's
    MatMul nodes by the name scopes torch.onnx records)."""

    scheme: str
    linears: tuple[str, ...]

    def key(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "linears": list(self.linears)}


def linear_paths(model: nn.Module) -> tuple[str, ...]:
    """The module paths of the decoder linears as they sit in the model (under an unmerged LoRA adapter: its
    base_layer)."""
    where = {id(module): name for name, module in model.named_modules()}
    return tuple(where[id(linear)] for linear in decoder_linears(model).values())


def library_for(precision: str, target, kind: str) -> Library:
    """The library that runs `precision` on this backend kind and device, or PrecisionSkipped naming what would."""
    capability = None
    if target.is_cuda and torch.cuda.is_available():
        capability = torch.cuda.get_device_capability(target.torch_device)
    problem = unavailable(precision, kind, target.device, capability)
    if problem:
        raise PrecisionSkipped(problem)
    return SCHEMES[precision].library(kind, target.device)


def realize_precision(model: nn.Module, precision: str | None, target, kind: str) -> tuple[nn.Module, dict[str, Any]]:
    """The model the backend should prepare for this precision, and the record fields that say how (none for an
    unquantized cell)."""
    if precision is None:
        return model, {}
    library = library_for(precision, target, kind)
    paths = linear_paths(model)
    fields = {"quant_library": library.name, "quant_library_version": version(library.distribution),
              "quant_call": library.call, "quant_weights": library.weights, "quant_activations": library.activations,
              "quant_linears": len(paths), "quant_scope": QUANTIZED_LINEARS}
    if kind == "onnxruntime":
        model.quantization = GraphRequest(precision, paths)  # read by the export (bench.backends.onnxruntime)
        from quantize.onnx_graph import ENGINES

        return model, fields | {"quant_engine": ENGINES[precision]}
    from quantize.torch_linears import quantize_linears

    engine = quantize_linears(model, precision, library, target, paths)
    return model, fields | {"quant_engine": engine}
