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
    from bench.variants.context import BuildContext, BuiltVariant
    from bench.config import VariantConfig
    from bench.model.classifier import XGLMClassifier

# method -> "module:builder"; method names are what records carry in `method`.
METHODS: dict[str, str] = {
    "dense": "bench.variants.dense:build",
    "prompt": "prompts.ptuning:build",
    "unstructured": "sparsify.variants:build_unstructured",
    "semi24": "sparsify.variants:build_semi24",
    "structured": "sparsify.variants:build_structured",
    "soft_prompt": "prompts.soft:build",
    "lora": "prompts.lora_variant:build",
}
# architecture kind (in an artifact's meta.json) -> "module:loader(weights_path, architecture)"
LOADERS: dict[str, str] = {
    "classifier": "bench.variants.dense:load",
    "prompt": "prompts.ptuning:load",
    "structured": "sparsify.variants:load_structured",
    "soft_prompt": "prompts.soft:load",
    "lora": "prompts.lora_variant:load",
}
# method -> "module:realize(model, target, backend) -> (model, fields)": how the method's weights run on one
# backend and target (the `speedup_mechanism` and its reason). Methods not listed run dense weights as they are;
# a variant trained on a base (a prompt or LoRA on a sparse model) runs the way its base runs.
REALIZERS: dict[str, str] = {
    "unstructured": "sparsify.realize:realize_unstructured",
    "semi24": "sparsify.realize:realize_semi24",
    "structured": "sparsify.realize:realize_structured",
}
# method -> "module:check(variant, backbone_config)": refusals that need only the backbone's config (preflight).
CHECKS: dict[str, str] = {
    "semi24": "sparsify.variants:check",
    "structured": "sparsify.variants:check",
}


def _resolve(registry: dict[str, str], name: str) -> Callable:
    module, _, attr = registry[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def builder(method: str) -> Callable[[BuildContext], BuiltVariant]:
    return _resolve(METHODS, method)


def realize(model, method: str, target, backend: str) -> tuple[Any, dict[str, Any]]:
    """The module a backend should prepare for this method and target, and the record fields that say how."""
    method = getattr(model, "base_method", None) or method  # set by bench.variants.bases.load_frozen
    if method not in REALIZERS:
        return model, {"speedup_mechanism": "none", "speedup_mechanism_reason": f"method '{method}' runs dense weights"}
    return _resolve(REALIZERS, method)(model, target, backend)


def check_variant(variant: VariantConfig, backbone_config) -> None:
    if variant.method in CHECKS:
        _resolve(CHECKS, variant.method)(variant, backbone_config)


def load_artifact_model(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    kind = architecture.get("kind")
    if kind not in LOADERS:
        raise ValueError(f"unknown architecture kind {kind!r}; known: {', '.join(LOADERS)}")
    return _resolve(LOADERS, kind)(weights, architecture)
