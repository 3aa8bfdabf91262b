"""Precisions a variant's linears may run in besides the sweep's dtype: int8 with dynamic activations, weight-only
int8, fp8. Declared once here (light: no torch), realised by the top-level package `quantize`.

A precision is a realisation choice like a sparse kernel, never part of the recipe: a variant listing
`precisions = ["int8"]` is measured as itself and as '<name>@int8', from the one artifact, in the same rounds
(VariantBase.cells). What quantizes on each backend is the library that does it best there, measured on the
2-vCPU AMD EPYC (AVX-512 VNNI; random:small, b8 x s64, 2 threads, docs/methods.md "Quantization"):
- eager, CPU: torch.ao's quantize_dynamic with per-channel weights, 2.87x over fp32; torchao's int8 dynamic 1.64x;
- compile: torchao (torch.ao's packed weights break dynamo's graph), 2.61x over compiled fp32;
- onnxruntime: onnxruntime.quantization's quantize_dynamic (MatMulInteger), 2.9x over ORT fp32;
- weight-only int8 saves memory, not time, on a CPU: torchao 0.93x in eager, ORT's 8-bit MatMulNBits 0.79x.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

Precision = Literal["int8", "int8-weight", "fp8"]


@dataclass(frozen=True)
class Library:
    """What quantizes a scheme on one backend and device, and what it makes of the weights and activations."""

    name: str  # torch.ao | torchao | onnxruntime.quantization
    distribution: str  # the installed distribution whose version the record carries
    call: str  # the API called, as the record names it
    weights: str  # granularity and symmetry of the int8 / fp8 weights
    activations: str  # how activations are quantized ("fp32: not quantized" for weight-only)


@dataclass(frozen=True)
class Scheme:
    name: str
    description: str
    # (backend kind, "cpu" | "cuda") -> the library; a pair missing here cannot run the scheme (the cell is skipped).
    libraries: dict[tuple[str, str], Library] = field(default_factory=dict)
    min_capability: tuple[int, int] | None = None  # CUDA compute capability the scheme needs

    def library(self, kind: str, device: str) -> Library | None:
        return self.libraries.get((kind, "cuda" if device.startswith("cuda") else "cpu"))


_INT8_WEIGHTS = "int8, per output channel, symmetric"
_TORCHAO_DYNAMIC = Library("torchao", "torchao", "quantize_(Int8DynamicActivationInt8WeightConfig())", _INT8_WEIGHTS,
                           "int8 per token, symmetric, computed at every call")
_TORCHAO_WEIGHT = Library("torchao", "torchao", "quantize_(Int8WeightOnlyConfig())", _INT8_WEIGHTS,
                          "not quantized: the cell's dtype (the weights are dequantized in the product)")
_ORT_DYNAMIC = Library("onnxruntime.quantization", "onnxruntime",
                       "quantize_dynamic(per_channel=True, weight_type=QInt8, op_types_to_quantize=[MatMul, Gemm])",
                       _INT8_WEIGHTS, "uint8 per tensor, affine, computed at every call (DynamicQuantizeLinear)")
_ORT_WEIGHT = Library("onnxruntime.quantization", "onnxruntime", "MatMulNBitsQuantizer(bits=8, block_size=32)",
                      "int8, per block of 32 input features, symmetric",
                      "not quantized: fp32 (MatMulNBits at accuracy level 0)")
_TORCHAO_FP8 = Library("torchao", "torchao", "quantize_(Float8DynamicActivationFloat8WeightConfig())",
                       "float8 e4m3, per output channel", "float8 e4m3 per token, computed at every call")

SCHEMES: dict[str, Scheme] = {
    "int8": Scheme(
        "int8", "int8 weights and int8 activations quantized at every call (dynamic quantization)",
        {("eager", "cpu"): Library("torch.ao", "torch",
                                   "torch.ao.quantization.quantize_dynamic(per_channel_dynamic_qconfig)",
                                   _INT8_WEIGHTS, "uint8 per tensor, affine, computed at every call"),
         ("eager", "cuda"): _TORCHAO_DYNAMIC, ("compile", "cpu"): _TORCHAO_DYNAMIC, ("compile", "cuda"): _TORCHAO_DYNAMIC,
         # ORT's CUDA provider: not declared, its MatMulInteger takes int8 inputs and DynamicQuantizeLinear makes uint8
         ("onnxruntime", "cpu"): _ORT_DYNAMIC}),
    "int8-weight": Scheme(
        "int8-weight", "int8 weights, activations in the cell's dtype (weight-only: a quarter of the fp32 bytes)",
        {("eager", "cpu"): _TORCHAO_WEIGHT, ("eager", "cuda"): _TORCHAO_WEIGHT, ("compile", "cpu"): _TORCHAO_WEIGHT,
         ("compile", "cuda"): _TORCHAO_WEIGHT, ("onnxruntime", "cpu"): _ORT_WEIGHT}),
    "fp8": Scheme(
        "fp8", "float8 (e4m3) weights and activations on the GPU's fp8 tensor cores",
        {("eager", "cuda"): _TORCHAO_FP8, ("compile", "cuda"): _TORCHAO_FP8}, min_capability=(8, 9)),
}

# What is quantized: the decoder layers' linears (q/k/v/out_proj, fc1, fc2: all the per-token matrix work); the
# embedding is a lookup and the head sees one token per sequence.
QUANTIZED_LINEARS = "decoder linears (q/k/v/out_proj, fc1, fc2 of every layer)"


def unavailable(precision: str, kind: str, device: str, capability: tuple[int, int] | None = None) -> str | None:
    """Why `precision` cannot run on backend kind `kind` on `device` (capability: the CUDA device's compute
    capability), naming what would; None when it can. Preflight refuses a precision no listed backend can run,
    a cell is skipped with this reason where only its backend cannot."""
    scheme = SCHEMES[precision]
    where = "cuda" if device.startswith("cuda") else "cpu"
    library = scheme.library(kind, device)
    if library is None:
        serving = sorted({k for (k, d) in scheme.libraries if d == where})
        return (f"precision {precision} has no quantizer for {kind} on {device}"
                + (f"; it runs on {', '.join(serving)}" if serving else ""))
    if scheme.min_capability is not None and (capability or (0, 0)) < scheme.min_capability:
        need = ".".join(map(str, scheme.min_capability))
        have = f"this GPU has {capability[0]}.{capability[1]}" if capability else "no CUDA device here"
        return f"precision {precision} needs compute capability {need} or newer; {have} (int8 runs there)"
    try:
        version(library.distribution)
    except PackageNotFoundError:
        return (f"precision {precision} on {kind} needs {library.name}, which is not installed "
                f"(pip install {library.distribution})")
    return None


def cpu_refusal(scheme: str, kinds: list[str]) -> str | None:
    """Why no listed backend kind can run `scheme` on the CPU, naming what would work (None when one can)."""
    declared = SCHEMES[scheme]
    if any(declared.library(kind, "cpu") for kind in kinds):
        return None
    serving = sorted(name for name, s in SCHEMES.items() if any(s.library(k, "cpu") for k in kinds))
    need = "a CUDA GPU" + (f" of compute capability {'.'.join(map(str, declared.min_capability))} or newer"
                           if declared.min_capability else "")
    return f"precision {scheme} needs {need}; on the CPU {' or '.join(serving) or 'no precision'} can run here"
