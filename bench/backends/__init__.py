"""Backends: one module each behind one small interface. `prepare(name, ...) -> Runner`.

A backend never knows how a variant was made: it receives a classifier module and an example batch.
Adding a backend is adding a module and a line in BACKENDS. A name may carry a variant of its backend after a
colon (`compile:max-autotune`: the compile backend in that mode); records carry the full name.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

from bench.backends.base import Runner, SkipCell, Target
from bench.config import BackendOptions
from bench.config_backends import backend_kind, check_backend_name, name_options

BACKENDS: dict[str, str] = {
    "eager": "bench.backends.eager:prepare",
    "compile": "bench.backends.compile:prepare",
    "onnxruntime": "bench.backends.onnxruntime:prepare",
}

__all__ = ["BACKENDS", "Runner", "SkipCell", "Target", "attention_fields", "prepare"]


def prepare(name: str, model, target: Target, example, options: BackendOptions, workdir: Path,
            export_cache: Path | None = None) -> Runner:
    """Build a runner for `model` on `target`, on the attention path `options.attention` (the caller's model keeps
    its own); raises SkipCell when the backend cannot serve that target. workdir: the runner's own scratch files;
    export_cache: the cache directory whose exports/ keeps ONNX exports across runs (None: exported into workdir)."""
    kind = backend_kind(check_backend_name(name))
    options = name_options(name, options)
    model = copy.copy(model)  # shares every submodule and weight; only the attribute below is its own
    model.attention_path = options.attention
    module, _, attr = BACKENDS[kind].partition(":")
    extra = {"export_cache": export_cache} if kind == "onnxruntime" and export_cache is not None else {}
    runner = getattr(importlib.import_module(module), attr)(model, target, example, options, workdir, **extra)
    runner.backend = name
    runner.info.update(attention_fields(model, kind))
    return runner


def attention_fields(model, kind: str) -> dict[str, Any]:
    """Which attention path a runner runs (`attention_path`: causal or masked) and what its SDPA gets for a mask
    (`attention_mask_form`; bench.model.attention.causal_attention)."""
    path, prefix = model.attention_path, model.prefix_length
    if path == "masked":
        form = "bool [B, 1, T, P+T]" if prefix else "bool [B, 1, T, T]"
    elif not prefix:
        form = "is_causal"
    else:  # torch.compile and torch.export cannot trace causal_lower_right: the same mask as a tensor
        form = "causal_lower_right" if kind == "eager" else "bool [T, P+T]"
    return {"attention_path": path, "attention_mask_form": form}
