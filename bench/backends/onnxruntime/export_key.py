"""The key of an ONNX Runtime export in the cache: a hash of everything its files depend on.

The model is identified by what it is, not by how it was made (a backend never learns that): a digest of every
parameter and buffer (names, dtypes, shapes, bytes), of its module tree as printed (classes, layer sizes, a pruned
model's heads) and of the source files of the classes in it, so that a change to the model's code or to
transformers' XGLM is a new key. Beside it, every setting that changes the graph: dtype, opset, ORT's optimisation
level, the SkipLayerNormalization fusion, the attention path, the quantization asked for (scheme and linears), the prefix length, the example batch it was traced
with (axes are dynamic; kept all the same), the provider and the device the optimised graph was made for (ORT's
optimiser may use what the CPU or GPU offers), the versions of torch, onnx, onnxscript, onnx-ir and onnxruntime,
and EXPORT_SCHEMA with the source of the export code itself. Hashing the weights costs about 1.5 s per GB on two
busy cores; an export of the same model costs far more.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import torch

from bench.backends.onnxruntime import export as ort_export, session as ort_session
from bench.backends.base import Target

EXPORT_SCHEMA = 1  # bump when export_for_ort writes different files for the same inputs
_PACKAGES = ("torch", "onnx", "onnxscript", "onnx-ir", "onnxruntime")


def export_key(model: torch.nn.Module, example, target: Target, *, opset: int, graph_optimization: str,
               skip_layer_norm: bool, attention_path: str, quantization: dict[str, Any] | None = None
               ) -> tuple[str, dict[str, Any]]:
    """(key, what it hashes): the key names the cache entry (`ort-<dtype>-<hash>`); the inputs go in export.json."""
    inputs = {
        "schema": EXPORT_SCHEMA,
        "weights": weights_digest(model),
        "structure": _digest(repr(model).encode()),
        "code": code_digest(model),
        "dtype": target.dtype, "opset": opset, "graph_optimization": graph_optimization,
        "skip_layer_norm": skip_layer_norm, "attention_path": attention_path, "quantization": quantization,
        "prefix_length": int(getattr(model, "prefix_length", 0) or 0),
        "example_shapes": [list(t.shape) for t in example],
        "provider": ort_session.requested_provider(target), "device": device_identity(target),
        "versions": {name: _version(name) for name in _PACKAGES},
    }
    key = _digest(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode())[:20]
    return f"ort-{target.dtype}-{key}", inputs


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, by name, dtype, shape and bytes (tied weights once)."""
    hasher = hashlib.sha256()
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        data = tensor.detach()
        hasher.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        # [numel * itemsize] uint8: any dtype (bf16 included) as its raw bytes, without a numpy dtype for it
        hasher.update(data.contiguous().reshape(-1).view(torch.uint8).cpu().numpy().data)
    return hasher.hexdigest()


def code_digest(model: torch.nn.Module) -> str:
    """sha256 of the source files of every class in the module tree (the float32 cast of half-precision exports
    included), and of the export code."""
    files = {inspect.getsourcefile(type(m)) for m in model.modules()} | {inspect.getsourcefile(ort_export), __file__}
    hasher = hashlib.sha256()
    for file in sorted(f for f in files if f):
        hasher.update(Path(file).name.encode() + Path(file).read_bytes())
    return hasher.hexdigest()


def device_identity(target: Target) -> str:
    """What the optimised graph was made for: the GPU model and its compute capability, or the CPU model."""
    from bench.measure.device import device_name

    if target.is_cuda:
        major, minor = torch.cuda.get_device_capability(target.torch_device)
        return f"{device_name(target.device)} sm_{major}{minor}"
    return f"{device_name('cpu')}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
