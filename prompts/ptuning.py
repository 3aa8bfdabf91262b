"""Prompt tuning as a variant method: freeze the backbone, train a P-tuning v2 prefix and the head, fold.

The artifact holds only what was learned (the folded prefix and the head, ~0.13% of xglm-564M) plus the
identity of what it was trained on (bench.variants.bases): the pretrained backbone (source, shape and a
fingerprint of its weights) or a base variant's artifact (key and weights fingerprint). Loading rebuilds that
model and refuses another one. On a structurally pruned base, each layer's prefix has that layer's heads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from bench.variants.bases import base_fields, check_backbone, frozen_model, load_frozen, same_base, shape_mismatch
from bench.variants.context import BuildContext, BuiltVariant
from bench.variants.train import train_classifier
from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier
from prompts.encoder import PrefixEncoder

__all__ = ["build", "load", "shape_mismatch", "check_backbone", "trainable_parameters", "trainable_share"]
WHAT = "prefix artifact"


class PromptTuned(nn.Module):
    """Training-time wrapper: each forward evaluates the encoder (dropout, MLP) into the live prefix slots."""

    def __init__(self, model: XGLMClassifier, encoder: PrefixEncoder) -> None:
        super().__init__()
        self.model, self.encoder = model, encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        for attn, (key, value) in zip(self.model.attentions, self.encoder()):
            attn.set_prefix(key, value, persistent=False)
        return self.model(input_ids, attention_mask)


def build(ctx: BuildContext) -> BuiltVariant:
    v = ctx.variant
    model, identity = frozen_model(ctx)
    if v.prefix_artifact:
        return _reuse(ctx, model, identity)
    encoder = PrefixEncoder.for_model(model, v.prompt_length, mlp_hidden=v.prompt_mlp_hidden if v.prompt_mlp else None,
                                      dropout=v.prompt_dropout)
    trained = trainable_parameters(model, encoder)
    result = train_classifier(
        PromptTuned(model, encoder), trained, ctx.train_ids, ctx.train_labels, ctx.train,
        pad_id=ctx.pad_id, seed=ctx.seed, device=ctx.device, console=ctx.console,
        description=f"{v.name} / {ctx.task.name} / seed {ctx.seed}",
    )
    model.cpu()
    for attn, (key, value) in zip(model.attentions, encoder.cpu().fold()):
        attn.set_prefix(key, value)
    return _built(ctx, model, identity, trainable=sum(p.numel() for p in trained), train=result)


def trainable_parameters(model: XGLMClassifier, encoder: PrefixEncoder) -> list[nn.Parameter]:
    """What prompt tuning trains: the prefix encoder (embedding, and MLP if any) and the head; nothing else."""
    return [*encoder.parameters(), *model.head.parameters()]


def trainable_share(model: XGLMClassifier, encoder: PrefixEncoder) -> float:
    """Trained parameters over all parameters of the model being trained (frozen backbone included)."""
    trained = sum(p.numel() for p in trainable_parameters(model, encoder))
    return trained / (sum(p.numel() for p in model.backbone.parameters()) + trained)


def _built(ctx: BuildContext, model: XGLMClassifier, identity: dict[str, Any], *, trainable: int, train) -> BuiltVariant:
    state = {k: t for k, t in model.state_dict().items() if k.startswith("head.") or k.endswith(("prefix_k", "prefix_v"))}
    return BuiltVariant(
        model=model,
        architecture={"kind": "prompt", **identity, "prompt_length": model.prefix_length},
        train=train,
        state_dict=state,
        extra={
            "prompt_length": model.prefix_length, "prompt_mlp": bool(ctx.variant.prompt_mlp), **base_fields(ctx),
            "params_trainable": trainable, "params_prefix": sum(t.numel() for k, t in state.items() if "prefix" in k),
            # During training the model is the frozen backbone plus what trains (encoder, MLP included, and head).
            "params_total_training": sum(p.numel() for p in model.backbone.parameters()) + trainable,
        },
    )


def _reuse(ctx: BuildContext, model: XGLMClassifier, identity: dict[str, Any]) -> BuiltVariant:
    """A prefix trained elsewhere (variant option prefix_artifact), joined to this sweep's backbone or base."""
    from bench.variants.artifacts import MODEL_FILE, Artifact

    artifact = Artifact.open(Path(ctx.variant.prefix_artifact))
    where = f"{WHAT} '{artifact.path}'"
    if artifact.meta["recipe"]["task"] != ctx.task.name:
        raise BenchError(f"{where} was trained for {artifact.meta['recipe']['task']}, not {ctx.task.name}")
    saved = artifact.meta["architecture"]
    same_base(saved, identity, where=where)
    if "base" not in identity:
        check_backbone(saved, model, identity["backbone_fingerprint"], where=where)
    _apply(model, load_file(str(artifact.path / MODEL_FILE)), where=str(artifact.path))
    return _built(ctx, model, identity, trainable=artifact.meta["params_trainable"], train=None)


def load(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    """Rebuild the backbone or base named in the artifact, check it is the one the prefix was trained on, apply."""
    model = load_frozen(architecture, weights, WHAT)
    _apply(model, load_file(str(weights)), where=str(weights.parent))
    return model.eval()


def _apply(model: XGLMClassifier, state: dict[str, torch.Tensor], *, where: str) -> None:
    """Folded prefix into the attention slots, then the head; every saved tensor must find its place."""
    for i, attn in enumerate(model.attentions):
        stem = f"backbone.layers.{i}.self_attn."
        if stem + "prefix_k" not in state:
            raise BenchError(f"{WHAT} '{where}' has no prefix for layer {i}")
        try:
            attn.set_prefix(state[stem + "prefix_k"], state[stem + "prefix_v"])
        except ValueError as exc:
            raise BenchError(f"{WHAT} '{where}' does not fit layer {i} of this model: {exc}") from None
    model.head.load_state_dict({k.removeprefix("head."): t for k, t in state.items() if k.startswith("head.")})
