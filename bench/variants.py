"""Variants: a method name -> a builder that turns a backbone and English training data into a classifier.

Builders are registered lazily as "module:function" strings so that `import bench` stays light and prompts/
and sparsify/ add methods by adding a line here, not by editing the sweep. A builder returns the trained
model plus a JSON `architecture` from which `rebuild_model` recreates the module tree when an artifact is
loaded (no pickled modules).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console

from bench.config import TrainConfig, VariantConfig
from bench.model import ModelSource, XGLMClassifier, count_parameters, load_backbone
from bench.tasks import TaskSpec
from bench.train import TrainResult, train_classifier

# method -> "module:builder"; method names are what records carry in `method`.
METHODS: dict[str, str] = {
    "dense": "bench.variants:build_dense",
    "prompt": "prompts.method:build",
    "unstructured": "sparsify.method:build_unstructured",
    "semi24": "sparsify.method:build_semi24",
    "structured": "sparsify.method:build_structured",
}
# architecture kind (in an artifact's meta.json) -> "module:loader(weights_path, architecture)"
LOADERS: dict[str, str] = {
    "classifier": "bench.variants:load_classifier",
    "prompt": "prompts.method:load",
    "structured": "sparsify.method:load_structured",
}
# method -> "module:realize(model, target, backend) -> (model, fields)": how the method's weights run on one
# backend and target (the `speedup_mechanism` and its reason). Methods not listed run dense weights as they are.
REALIZERS: dict[str, str] = {
    "unstructured": "sparsify.realize:realize_unstructured",
    "semi24": "sparsify.realize:realize_semi24",
    "structured": "sparsify.realize:realize_structured",
}
# method -> "module:check(variant, backbone_config)": refusals that need only the backbone's config (preflight).
CHECKS: dict[str, str] = {
    "semi24": "sparsify.method:check",
    "structured": "sparsify.method:check",
}


@dataclass
class BuildContext:
    variant: VariantConfig
    task: TaskSpec
    source: ModelSource
    train: TrainConfig
    seed: int  # training: head and prefix init, data order, dropout
    backbone_seed: int  # random-weight backbones: the same "pretrained" model for every variant and seed
    train_ids: list[list[int]]
    train_labels: list[int]
    pad_id: int
    device: torch.device
    console: Console | None = None
    trust_remote_code: bool = False


@dataclass
class BuiltVariant:
    model: XGLMClassifier
    architecture: dict[str, Any]
    train: TrainResult | None  # None: nothing was trained (e.g. a reused prefix)
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific record fields
    state_dict: dict[str, torch.Tensor] | None = None  # what the artifact stores; None: the whole model


def _resolve(registry: dict[str, str], name: str) -> Callable:
    module, _, attr = registry[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def builder(method: str) -> Callable[[BuildContext], BuiltVariant]:
    return _resolve(METHODS, method)


def realize(model, method: str, target, backend: str) -> tuple[Any, dict[str, Any]]:
    """The module a backend should prepare for this method and target, and the record fields that say how."""
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


def load_classifier(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    from safetensors.torch import load_model

    model = rebuild_model(architecture)
    load_model(model, str(weights), strict=True)
    return model.eval()


def classifier_architecture(model: XGLMClassifier) -> dict[str, Any]:
    return {
        "kind": "classifier",
        "backbone_config": model.config.to_dict(),
        "num_labels": model.head.out_features,
    }


def rebuild_model(architecture: dict[str, Any]) -> XGLMClassifier:
    """An untrained module tree of the right shapes; the caller loads the weights."""
    from transformers import XGLMConfig, XGLMModel

    if architecture.get("kind") != "classifier":
        raise ValueError(f"unknown architecture kind {architecture.get('kind')!r}")
    config = XGLMConfig.from_dict(architecture["backbone_config"])
    return XGLMClassifier(XGLMModel(config), architecture["num_labels"])


def build_dense(ctx: BuildContext) -> BuiltVariant:
    """Full fine-tuning: every parameter of backbone and head trains."""
    backbone = load_backbone(ctx.source, seed=ctx.backbone_seed, trust_remote_code=ctx.trust_remote_code)
    torch.manual_seed(ctx.seed)
    model = XGLMClassifier(backbone, ctx.task.num_labels)
    result = train_classifier(
        model, model.parameters(), ctx.train_ids, ctx.train_labels, ctx.train,
        pad_id=ctx.pad_id, seed=ctx.seed, device=ctx.device, console=ctx.console,
        description=f"{ctx.variant.name} / {ctx.task.name} / seed {ctx.seed}",
    )
    _, trainable = count_parameters(model)
    return BuiltVariant(
        model=model.cpu(),
        architecture=classifier_architecture(model),
        train=result,
        extra={"sparsity": 0.0, "prompt_length": 0, "params_trainable": trainable},
    )
