"""Prompt tuning as a variant method: freeze the backbone, train a P-tuning v2 prefix and the head, fold.

The artifact holds only what was learned (the folded prefix and the head, ~0.13% of xglm-564M) plus the
identity of the backbone it belongs to: its source, its shape and a fingerprint of its weights. Loading
rebuilds that backbone and refuses a backbone of another shape or other weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier, weights_fingerprint
from bench.model.source import ModelSource, load_backbone
from bench.build.train import train_classifier
from bench.build.context import BuildContext, BuiltVariant
from prompts.encoder import PrefixEncoder

SHAPE_KEYS = ("d_model", "num_layers", "attention_heads", "max_position_embeddings")


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
    backbone = load_backbone(ctx.source, seed=ctx.backbone_seed, trust_remote_code=ctx.trust_remote_code)
    fingerprint = weights_fingerprint(backbone)
    torch.manual_seed(ctx.seed)
    model = XGLMClassifier(backbone, ctx.task.num_labels)
    model.backbone.requires_grad_(False)
    if v.prefix_artifact:
        return _reuse(ctx, model, fingerprint)
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
    return _built(ctx, model, fingerprint, trainable=sum(p.numel() for p in trained), train=result)


def trainable_parameters(model: XGLMClassifier, encoder: PrefixEncoder) -> list[nn.Parameter]:
    """What prompt tuning trains: the prefix encoder (embedding, and MLP if any) and the head; nothing else."""
    return [*encoder.parameters(), *model.head.parameters()]


def trainable_share(model: XGLMClassifier, encoder: PrefixEncoder) -> float:
    """Trained parameters over all parameters of the model being trained (frozen backbone included)."""
    trained = sum(p.numel() for p in trainable_parameters(model, encoder))
    return trained / (sum(p.numel() for p in model.backbone.parameters()) + trained)


def _built(ctx: BuildContext, model: XGLMClassifier, fingerprint: str, *, trainable: int, train) -> BuiltVariant:
    state = {k: t for k, t in model.state_dict().items() if k.startswith("head.") or k.endswith(("prefix_k", "prefix_v"))}
    return BuiltVariant(
        model=model,
        architecture={
            "kind": "prompt", "backbone": str(ctx.source), "backbone_seed": ctx.backbone_seed,
            "backbone_config": model.config.to_dict(), "backbone_fingerprint": fingerprint,
            "num_labels": model.head.out_features, "prompt_length": model.prefix_length,
        },
        train=train,
        state_dict=state,
        extra={
            "prompt_length": model.prefix_length, "prompt_mlp": bool(ctx.variant.prompt_mlp), "sparsity": 0.0,
            "params_trainable": trainable, "params_prefix": sum(t.numel() for k, t in state.items() if "prefix" in k),
            # During training the model is the frozen backbone plus what trains (encoder, MLP included, and head).
            "params_total_training": sum(p.numel() for p in model.backbone.parameters()) + trainable,
        },
    )


def _reuse(ctx: BuildContext, model: XGLMClassifier, fingerprint: str) -> BuiltVariant:
    """A prefix trained elsewhere (variant option prefix_artifact), joined to this sweep's backbone."""
    from bench.build.artifacts import MODEL_FILE, Artifact

    artifact = Artifact.open(Path(ctx.variant.prefix_artifact))
    if artifact.meta["recipe"]["task"] != ctx.task.name:
        raise BenchError(f"prefix artifact '{artifact.path}' was trained for {artifact.meta['recipe']['task']}, not {ctx.task.name}")
    check_backbone(artifact.meta["architecture"], model, fingerprint, where=str(artifact.path))
    _apply(model, load_file(str(artifact.path / MODEL_FILE)), where=str(artifact.path))
    return _built(ctx, model, fingerprint, trainable=artifact.meta["params_trainable"], train=None)


def load(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    """Rebuild the backbone named in the artifact, check it is the one the prefix was trained on, apply."""
    source = ModelSource.parse(architecture["backbone"])
    backbone = load_backbone(source, seed=architecture["backbone_seed"])
    model = XGLMClassifier(backbone, architecture["num_labels"])
    check_backbone(architecture, model, weights_fingerprint(backbone), where=str(weights.parent))
    _apply(model, load_file(str(weights)), where=str(weights.parent))
    return model.eval()


def shape_mismatch(architecture: dict[str, Any], config) -> str | None:
    """'d_model 64 vs 512, ...' (saved vs given) where a prompt artifact's backbone shape differs, else None."""
    saved = {k: architecture["backbone_config"].get(k) for k in SHAPE_KEYS}
    here = {k: getattr(config, k) for k in SHAPE_KEYS}
    if saved == here:
        return None
    diff = ", ".join(f"{k} {saved[k]} vs {here[k]}" for k in SHAPE_KEYS if saved[k] != here[k])
    return f"trained for a backbone of another shape ({diff}: saved vs this one)"


def check_backbone(architecture: dict[str, Any], model: XGLMClassifier, fingerprint: str, *, where: str) -> None:
    mismatch = shape_mismatch(architecture, model.config)
    if mismatch:
        raise BenchError(f"prefix artifact '{where}' was {mismatch}")
    if architecture.get("backbone_fingerprint") != fingerprint:
        raise BenchError(
            f"prefix artifact '{where}' was trained on other backbone weights ({architecture['backbone']}, "
            f"fingerprint {architecture.get('backbone_fingerprint')}); this backbone's fingerprint is {fingerprint}"
        )


def _apply(model: XGLMClassifier, state: dict[str, torch.Tensor], *, where: str) -> None:
    """Folded prefix into the attention slots, then the head; every saved tensor must find its place."""
    for i, attn in enumerate(model.attentions):
        stem = f"backbone.layers.{i}.self_attn."
        if stem + "prefix_k" not in state:
            raise BenchError(f"prefix artifact '{where}' has no prefix for layer {i}")
        attn.set_prefix(state[stem + "prefix_k"], state[stem + "prefix_v"])
    model.head.load_state_dict({k.removeprefix("head."): t for k, t in state.items() if k.startswith("head.")})
