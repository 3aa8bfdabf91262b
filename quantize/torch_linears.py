"""The decoder linears of a torch module quantized in place, for eager and compile.

- torch.ao's `quantize_dynamic` (eager on the CPU): nn.Linear -> a dynamic quantized linear whose int8 weight is
  prepacked for torch's quantized engine (x86: fbgemm and oneDNN). Deprecated in favour of torchao, yet the fastest
  here (2.87x over fp32 against torchao's 1.64x; bench.plugins.precision). Its packed weights are script objects
  dynamo cannot trace (a graph break per linear), so compile uses torchao.
- torchao's `quantize_` (compile; eager on CUDA; weight-only and fp8 everywhere): the weights become tensor
  subclasses whose matmuls inductor fuses.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from bench.plugins.precision import Library


def quantize_linears(model: nn.Module, precision: str, library: Library, target, paths: tuple[str, ...]) -> str:
    """Quantize the linears at `paths` with `library`; returns the engine that runs them."""
    from quantize.realize import PrecisionSkipped

    if not target.is_cuda and target.dtype != "fp32":
        raise PrecisionSkipped(f"precision {precision} on the CPU quantizes an fp32 model, not {target.dtype}: "
                               "its fp32 cells measure it")
    if library.name == "torch.ao":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao: known, and said
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message="torch.quantize_per_tensor, torch.quantize_per_channel")
            quantize_dynamic(model, {path: per_channel_dynamic_qconfig for path in paths}, inplace=True)
        return f"torch quantized engine {torch.backends.quantized.engine}"
    config = _torchao_config(precision)
    if target.is_cuda:  # torchao quantizes the weights where they are: on the GPU, in the cell's dtype
        model.to(device=target.torch_device, dtype=target.torch_dtype)
    from torchao.quantization import quantize_

    wanted = set(paths)
    quantize_(model, config, filter_fn=lambda module, fqn: fqn in wanted)
    return f"torchao {type(config).__name__}"


def _torchao_config(precision: str):
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig, Int8DynamicActivationInt8WeightConfig,
                                      Int8WeightOnlyConfig)

    return {"int8": Int8DynamicActivationInt8WeightConfig, "int8-weight": Int8WeightOnlyConfig,
            "fp8": Float8DynamicActivationFloat8WeightConfig}[precision]()
