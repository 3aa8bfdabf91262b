"""The method registry: a method name -> "module:attribute" strings for its builder, loader, realiser and check.

Entries are strings, resolved only when a method is used, so that `import bench` and config validation stay light
and prompts/ and sparsify/ add a method by adding a line here, not by editing the sweep. This module imports
nothing from the project, so anything (config validation included) may import it without a cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.build.context import BuildContext, BuiltVariant
    from bench.config import VariantConfig
    from bench.model.classifier import XGLMClassifier

# method -> "module:builder"; method names are what records carry in `method`.
METHODS: dict[str, str] = {
    "dense": "bench.build.dense:build",
    "prompt": "prompts.method:build",
    "unstructured": "sparsify.method:build_unstructured",
    "semi24": "sparsify.method:build_semi24",
    "structured": "sparsify.method:build_structured",
    "block": "sparsify.method:build_block",
    "soft_prompt": "prompts.soft:build",
    "lora": "adapters.method:build",
}
# architecture kind (in an artifact's meta.json) -> "module:loader(weights_path, architecture)"
LOADERS: dict[str, str] = {
    "classifier": "bench.build.dense:load",
    "prompt": "prompts.method:load",
    "structured": "sparsify.method:load_structured",
    "soft_prompt": "prompts.soft:load",
    "lora": "adapters.method:load",
}
# method -> "module:realize(model, target, backend, options) -> (model, fields)": how the method's weights run on
# one backend and target with the cell's realisation options (the sparse kernel), and the fields that say how
# (`speedup_mechanism`, its reason, the kernel fields). Methods not listed run dense weights as they are; a variant
# trained on a base (a prompt or LoRA on a sparse model) runs the way its base runs.
REALIZERS: dict[str, str] = {
    "unstructured": "sparsify.realize_kernels:realize_masked",
    "semi24": "sparsify.realize_kernels:realize_masked",
    "block": "sparsify.realize_kernels:realize_masked",
    "structured": "sparsify.realize:realize_structured",
}
# method -> "module:check(variant, backbone_config)": refusals that need only the backbone's config (preflight).
CHECKS: dict[str, str] = {
    "semi24": "sparsify.method:check",
    "structured": "sparsify.method:check",
    "block": "sparsify.method:check",
}


def _resolve(registry: dict[str, str], name: str) -> Callable:
    module, _, attr = registry[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def builder(method: str) -> Callable[[BuildContext], BuiltVariant]:
    return _resolve(METHODS, method)


def realize(model, method: str, target, backend: str, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The module a backend should prepare for this method and target, and the record fields that say how.
    `options` are the cell's realisation options, which are not part of the recipe: `kernel` (sparsify.kernels),
    with `block_shape` and `cache_dir` for it."""
    method = getattr(model, "base_method", None) or method  # set by bench.build.bases.load_frozen
    if method not in REALIZERS:
        return model, {"speedup_mechanism": "none", "speedup_mechanism_reason": f"method '{method}' runs dense weights"}
    return _resolve(REALIZERS, method)(model, target, backend, options)


def check_variant(variant: VariantConfig, backbone_config) -> None:
    if variant.method in CHECKS:
        _resolve(CHECKS, variant.method)(variant, backbone_config)


def load_artifact_model(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    kind = architecture.get("kind")
    if kind not in LOADERS:
        raise ValueError(f"unknown architecture kind {kind!r}; known: {', '.join(LOADERS)}")
    return _resolve(LOADERS, kind)(weights, architecture)
