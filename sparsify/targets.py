"""Which weights a sparsity method prunes: the decoder-layer linears, plus the embedding or head when asked.

The decoder-layer linears (q/k/v/out_proj, fc1, fc2) hold most of an XGLM classifier's weights and all of
its per-token matrix work (302M of 564M parameters; the embedding is a lookup, the head sees one token per
sequence). The embedding and head are left dense unless `sparsity_include` names them.
"""

from __future__ import annotations

from torch import nn

from bench.model.classifier import XGLMClassifier

# Names inside one XGLMDecoderLayer, in the order of the forward pass.
DECODER_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2")
# What `sparsity_include` may add to the decoder linears, and where it lives in the classifier.
EXTRA_TARGETS = {"embedding": "backbone.embed_tokens", "head": "head"}


def decoder_linears(model: XGLMClassifier) -> dict[str, nn.Linear]:
    """'backbone.layers.{i}.{name}' -> the nn.Linear, every layer, in order (under a LoRA adapter: the frozen
    linear it wraps, its `base_layer`, which is what masks and 2:4 kernels apply to)."""
    return {
        f"backbone.layers.{i}.{name}": getattr(layer.get_submodule(name), "base_layer", layer.get_submodule(name))
        for i, layer in enumerate(model.backbone.layers)
        for name in DECODER_LINEARS
    }


def sparse_targets(model: XGLMClassifier, include: tuple[str, ...] | list[str] = ()) -> dict[str, nn.Parameter]:
    """'<module>.weight' -> the weight a mask applies to: decoder linears, then the extra targets in `include`.

    Biases are never pruned: they are a rounding error in size and in work.
    """
    unknown = [name for name in include if name not in EXTRA_TARGETS]
    if unknown:
        raise ValueError(f"unknown sparsity target(s) {unknown}; available: {', '.join(EXTRA_TARGETS)}")
    targets = {f"{name}.weight": linear.weight for name, linear in decoder_linears(model).items()}
    for extra in include:
        targets[f"{EXTRA_TARGETS[extra]}.weight"] = model.get_submodule(EXTRA_TARGETS[extra]).weight
    return targets
