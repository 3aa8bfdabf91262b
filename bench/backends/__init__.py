"""Backends: one package each, declared once (`SPEC` in its __init__, bench.plugins.spec.BackendSpec) and run
through one small interface: `prepare(name, ...) -> Runner`.

A backend never knows how a variant was made: it receives a classifier module and an example batch. Adding a
backend is adding a package (or a module in another distribution) and its entry (bench.plugins). A name may carry a
mode after a colon (`compile:max-autotune`); records carry the full name. This package's own names load lazily, so
that reading a declaration never imports torch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plugins

if TYPE_CHECKING:
    from bench.backends.base import Runner, SkipCell, Target
    from bench.config import BackendOptions

__all__ = ["Runner", "SkipCell", "Target", "attention_fields", "prepare"]


def __getattr__(name: str) -> Any:
    if name in ("Runner", "SkipCell", "Target"):
        from bench.backends import base

        return getattr(base, name)
    raise AttributeError(f"module 'bench.backends' has no attribute '{name}'")


def prepare(name: str, model, target: Target, example, options: BackendOptions, workdir: Path,
            export_cache: Path | None = None) -> Runner:
    """Build a runner for `model` on `target`, on the attention path `options.attention` (the caller's model keeps
    its own); raises SkipCell when the backend cannot serve that target. workdir: the runner's own scratch files;
    export_cache: the cache directory that keeps exports across runs (None: exported into workdir)."""
    from bench.backends.base import SkipCell

    spec = plugins.backend(name)
    kind, _, mode = name.partition(":")
    if mode:
        section = getattr(options, kind)
        options = options.model_copy(update={kind: spec.with_mode(section, mode)})
    why = plugins.hook(spec.available)() if spec.available else None
    if why:
        raise SkipCell(why)
    model = copy.copy(model)  # shares every submodule and weight; only the attribute below is its own
    model.attention_path = options.attention
    extra = {"export_cache": export_cache} if spec.uses_export_cache and export_cache is not None else {}
    runner = plugins.resolve(spec.prepare)(model, target, example, options, workdir, **extra)
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
