"""The decoder linears of a torch module quantized in place, for eager and compile.

- torch.ao's `quantize_dynamic` (eager on the CPU): nn.Linear -> a dynamic quantized linear whose int8 weight is
  prepacked for torch's quantized engine (x86: fbgemm and oneDNN). Deprecated in favour of torchao, yet the fastest
  here (2.87x over fp32 against torchao's 1.64x; bench.plugins.precision). Its packed weights are script objects
  dynamo cannot trace (a graph break per linear), so compile uses torchao.
- torchao's `quantize_` (compile; eager on CUDA; weight-only and fp8 everywhere): the weights become tensor
  subclasses whose matmuls inductor fuses.

torch.ao's dynamic linear quantizes its activations to 7 bits (`reduce_range=True`, fixed in its forward): without
VNNI, x86's u8 x s8 multiply-add accumulates pairs in 16 bits and full 8-bit ranges can saturate. With VNNI (or AMX)
the products accumulate in 32 bits, so the linears here use the full range there: on the 2-vCPU AMD EPYC
(avx512_vnni), random:small's dense-ft, 960 sequences, agreement with fp32 rose from 98.1 % to 99.5 % and the
largest logit error fell from 0.027 to 0.015, at the same speed (35.9 vs 35.2 ms at 8 x 64).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

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
        full = vnni()
        if full:
            for path in paths:
                model.get_submodule(path).__class__ = FullRangeDynamicLinear
        activations = "8-bit range (VNNI: 32-bit accumulation)" if full else "7-bit range (reduce_range: no VNNI)"
        return f"torch quantized engine {torch.backends.quantized.engine}, activations {activations}"
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


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def vnni() -> bool:
    """Whether this CPU multiplies u8 x s8 into 32-bit sums (VNNI or AMX): full-range activations cannot saturate."""
    from bench.measure.device import _cpuinfo_value

    try:
        return bool(set(_cpuinfo_value("flags").split()) & set(VNNI_FLAGS))
    except Exception:
        return False


class FullRangeDynamicLinear(DynamicLinear):
    """torch.ao's dynamic int8 linear with its activations quantized over the full 8-bit range."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False)
        return y.to(x.dtype)
