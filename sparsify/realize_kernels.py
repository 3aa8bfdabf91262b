"""A masked variant's linears on the cell's kernel: the realisation of `unstructured`, `block` and `semi24`.

    realize_masked(model, target, backend, options) -> (model, record fields)

Kernels (sparsify.kernels.KERNELS):
- `dense`: the zeros are multiplied by dense kernels: the masked-dense control (`speedup_mechanism` none);
- `csr`, `bsr`: every decoder linear compressed and multiplied sparse (`sparse_kernel`); `bsr` takes the variant's
  block shape (method `block`);
- `2:4`: torch's semi-structured tensors on CUDA fp16/bf16 (`sparse_tensor_cores`; sparsify.realize);
- `auto`: 2:4 weights on sparse tensor cores where those run them (CUDA fp16/bf16, as before kernels existed; not
  calibrated); otherwise, per linear, the compressed layout whose break-even density on this machine
  (sparsify.kernel_calibration) is at or above the linear's density, else dense. It never refuses, and never
  picks a compressed kernel measured to lose.

A kernel that cannot run where the cell runs is never replaced by dense under its label: preflight refuses what
it can see from the config (bf16 CSR on the CPU, a block that does not divide a weight, 2:4 off CUDA), and the
cell is `skipped` with the reason where the backend has no sparse path (ONNX Runtime densifies sparse
initializers, and its com.microsoft.SparseToDenseMatMul fails type checking with a sparse initializer,
onnxruntime #31730).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsify.masks import is_semi24
from sparsify.realize import semi24_unsupported
from sparsify.kernels import CHUNK, COMPRESSED, CompressedLinear, KernelSkipped, Layout, unsupported
from sparsify.targets import decoder_linears

ORT_NO_SPARSE = ("ONNX Runtime has no sparse matmul for these weights: it densifies sparse initializers, and "
                 "com.microsoft.SparseToDenseMatMul fails type checking with a sparse initializer (onnxruntime #31730)")


@dataclass(frozen=True)
class RealizeOptions:
    """A cell's realisation options: not part of the recipe (the trained weights are the same), part of the cell."""

    kernel: str = "dense"
    block_shape: tuple[int, int] | None = None  # the variant's blocks (method block)
    cache_dir: str | None = None  # where `auto`'s calibration is cached

    @classmethod
    def of(cls, options: Any) -> RealizeOptions:
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        block = options.get("block_shape")
        return cls(kernel=options.get("kernel") or "dense", block_shape=tuple(block) if block else None,
                   cache_dir=options.get("cache_dir"))


def realize_masked(model: nn.Module, target, backend: str, options=None) -> tuple[nn.Module, dict[str, Any]]:
    opts = RealizeOptions.of(options)
    linears = decoder_linears(model)
    if opts.kernel == "dense":
        where = ("ONNX Runtime densifies sparse initializers and runs dense GEMMs" if backend == "onnxruntime"
                 else f"{backend} on {target.device} runs dense GEMMs")
        reason = f"zeros multiplied like any weight: {where}; the masked-dense control"
        if linears and all(is_semi24(linear.weight) for linear in linears.values()):
            why_not = semi24_unsupported(target, backend)  # where 2:4 could run, its own cell (kernel 2:4) runs it
            reason += f" (no 2:4 kernel here: {why_not})" if why_not else " (2:4 sparse tensor cores serve its 2:4 cell)"
        return model, _fields("none", reason, opts.kernel, {name: "dense" for name in linears})
    if opts.kernel == "2:4":
        return _semi24(model, target, backend, linears)
    if opts.kernel in COMPRESSED:
        if backend == "onnxruntime":
            raise KernelSkipped(f"{opts.kernel} kernel on onnxruntime: {ORT_NO_SPARSE}")
        layout = _layout(opts.kernel, opts.block_shape)
        for name, linear in linears.items():
            problem = unsupported(layout, target.device, target.torch_dtype, tuple(linear.weight.shape))
            if problem:
                raise KernelSkipped(f"{layout.label} kernel cannot serve {name}: {problem}")
        served = {name: layout for name in linears}
        reason = (f"decoder linears as {layout.label} tensors with int32 indices, in column chunks of {CHUNK} "
                  "input features, through torch.sparse.mm")
        extra: dict[str, Any] = {}
    else:  # auto
        if _semi24_serves(target, backend, linears):
            return _semi24(model, target, backend, linears)
        if backend == "onnxruntime":
            return model, _fields("none", f"auto: dense kernels: {ORT_NO_SPARSE}", "auto",
                                  {name: "dense" for name in linears})
        served, extra = _auto(linears, target, opts)
        reason = ("auto: each decoder linear on the kernel whose measured break-even density on this machine is at "
                  "or above its density, else dense")
        if linears and all(is_semi24(linear.weight) for linear in linears.values()):
            reason += f" (no 2:4 kernel here: {semi24_unsupported(target, backend)})"
    for name, layout in served.items():
        if layout is not None:
            _replace(model, name, CompressedLinear(linears[name], layout))
    labels = {name: layout.label if layout else "dense" for name, layout in served.items()}
    mechanism = "sparse_kernel" if any(served.values()) else "none"
    if backend.startswith("compile") and mechanism == "sparse_kernel":
        reason += " (under torch.compile: the custom op sparsify::compressed_mm, opaque to inductor)"
    return model, _fields(mechanism, reason, opts.kernel, labels) | extra


def _semi24(model, target, backend: str, linears: dict[str, nn.Linear]) -> tuple[nn.Module, dict[str, Any]]:
    from bench.errors import BenchError
    from sparsify.masks import is_semi24
    from sparsify.realize import SemiStructuredLinear, _kernel_class, check_kernel_shapes, semi24_unsupported

    reason = semi24_unsupported(target, backend)
    if reason:
        raise KernelSkipped(f"2:4 kernel: {reason}")
    check_kernel_shapes(model, target.torch_dtype)
    for name, linear in linears.items():
        if not is_semi24(linear.weight):
            raise BenchError(f"a decoder linear is not 2:4 sparse ({name}); the 2:4 kernel serves method semi24 only")
        linear.__class__ = SemiStructuredLinear
    kernel = _kernel_class().BACKEND
    return model, _fields("sparse_tensor_cores", f"decoder linears as torch.sparse 2:4 semi-structured tensors ({kernel})",
                          "2:4", {name: "2:4" for name in linears})


def _semi24_serves(target, backend: str, linears: dict[str, nn.Linear]) -> bool:
    """auto on 2:4 weights where sparse tensor cores run them (CUDA, fp16/bf16, compute capability >= 8.0)."""
    return semi24_unsupported(target, backend) is None and all(is_semi24(lin.weight) for lin in linears.values())


def _auto(linears: dict[str, nn.Linear], target, opts: RealizeOptions) -> tuple[dict[str, Layout | None], dict[str, Any]]:
    from sparsify.kernel_calibration import Calibration

    calibration = Calibration(Path(opts.cache_dir) if opts.cache_dir else None, target.device, target.torch_dtype,
                              target.threads)
    candidates = [Layout("csr")]
    if opts.block_shape is not None:
        candidates.insert(0, _layout("bsr", opts.block_shape))
    served: dict[str, Layout | None] = {}
    breakevens: dict[str, float] = {}
    for name, linear in linears.items():
        shape = tuple(linear.weight.shape)
        density = float(torch.count_nonzero(linear.weight)) / linear.weight.numel()
        best: tuple[float, Layout] | None = None
        for layout in candidates:
            if unsupported(layout, target.device, target.torch_dtype, shape):
                continue
            breakeven = breakevens.setdefault(f"{layout.label} {shape[0]}x{shape[1]}", calibration.breakeven(layout, shape))
            # The layout with the most headroom (break-even furthest above the linear's density) wins.
            if density <= breakeven and (best is None or breakeven - density > best[0]):
                best = (breakeven - density, layout)
        served[name] = best[1] if best else None
    return _whole_chains(served), {"sparse_kernel_breakeven_density": breakevens, **calibration.record()}


# Linears whose kernel gains hold only together, in the model's layout (the calibration times each one on x^T):
# q/k/v share one x^T only when all three read it (bench.model.attention); fc2 through a kernel reads fc1's
# transposed output for free, but a dense fc1's output it must transpose (4 MiB at 512 tokens), and a dense fc2
# reads a kernel fc1's output slowly. fc2 alone through CSR at 80 % (random:small, 2 threads, Intel Xeon VM) made
# the model 0.88x (0.86-0.89) of dense, though fc2 alone calibrated at 1.07x.
_CHAINS = ({"q_proj", "k_proj", "v_proj"}, {"fc1", "fc2"})


def _whole_chains(served: dict[str, Layout | None]) -> dict[str, Layout | None]:
    """Dense for every member of a chain (within one decoder layer) that has a member a kernel does not win."""
    def chain(name: str) -> tuple[str, int] | None:
        parent, _, leaf = name.rpartition(".")
        layer = parent.removesuffix(".self_attn")
        return next(((layer, i) for i, members in enumerate(_CHAINS) if leaf in members), None)

    broken = {chain(name) for name, layout in served.items() if layout is None} - {None}
    return {name: None if chain(name) in broken else layout for name, layout in served.items()}


def _layout(kernel: str, block_shape: tuple[int, int] | None) -> Layout:
    if kernel == "bsr":
        if block_shape is None:
            raise KernelSkipped("bsr kernel: the variant has no block_shape (bsr serves method block; csr serves any pattern)")
        return Layout("bsr", tuple(block_shape))
    return Layout(kernel)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` where decoder_linears found `name`: inside a LoRA wrapper as its base_layer, else in the parent."""
    module = model.get_submodule(name)
    if hasattr(module, "base_layer"):
        module.base_layer = new
        return
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent), leaf, new)


def _fields(mechanism: str, reason: str, kernel: str, labels: dict[str, str]) -> dict[str, Any]:
    """`sparse_kernel`: the cell's kernel; `sparse_kernel_linears`: how many decoder linears each kernel served;
    `sparse_kernel_by_linear`: which kernel served each ('layers.<i>.<linear>')."""
    short = {name.removeprefix("backbone."): label for name, label in labels.items()}
    return {"speedup_mechanism": mechanism, "speedup_mechanism_reason": reason, "sparse_kernel": kernel,
            "sparse_kernel_linears": dict(Counter(labels.values())), "sparse_kernel_by_linear": short}


def kernel_refusal(variant, device: str, dtypes: list[str], backends: list[str]) -> str | None:
    """Preflight: why one of a variant's kernels cannot serve any of its cells on this device, dtypes and backends
    (one line saying what would serve), or None. `auto` never refuses; a backend without a sparse path
    (ONNX Runtime) makes its kernel cells skipped, not refused."""
    from bench.plugins import backend_kind
    from bench.model.dtypes import TORCH_DTYPES

    if not {"eager", "compile"} & {backend_kind(b) for b in backends}:
        return None
    where = f"variant '{variant.name}'"
    for kernel in getattr(variant, "kernels", None) or ():
        if kernel == "2:4" and not device.startswith("cuda"):
            return (f"{where}: kernel 2:4 runs on CUDA sparse tensor cores only, not {device}; on the CPU use "
                    "kernels = [\"csr\"] or [\"auto\"]")
        if kernel not in COMPRESSED:
            continue
        layout = _layout(kernel, tuple(getattr(variant, "block_shape", None) or (16, 16)) if kernel == "bsr" else None)
        for dtype in dtypes:
            problem = unsupported(layout, device, TORCH_DTYPES[dtype], None)
            if problem and problem != "CUDA is not available":
                serve = "measure fp32, or use kernels = [\"auto\"] (dense where no kernel serves)"
                if "square" in problem or "16x16" in problem:
                    serve = "use a block_shape that it takes, or kernels = [\"csr\"]"
                return f"{where}: kernel {layout.label} on {device} in {dtype}: {problem}; {serve}"
    return None
