"""Dense full fine-tuning (every parameter trains) and the classifier artifact format that other methods reuse.

A builder returns the trained model plus a JSON `architecture` from which the module tree is rebuilt when an
artifact is loaded (no pickled modules).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.variants.context import BuildContext, BuiltVariant
from bench.variants.train import train_classifier
from bench.model.classifier import XGLMClassifier, count_parameters
from bench.model.source import load_backbone


def load(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
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


def build(ctx: BuildContext) -> BuiltVariant:
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
