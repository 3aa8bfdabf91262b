"""Structured pruning: whole attention heads and FFN channels removed physically, d_model kept whole.

Scores per head and per channel come from element scores (scores.py) summed over every weight the unit owns:
a head's q/k/v rows and biases and its out_proj columns; a channel's fc1 row and bias and its fc2 column.
Removal is torch-pruning's DepGraph: the group rooted at q_proj's output channels couples k_proj, v_proj
and out_proj's inputs through the SDPA graph, and the group rooted at fc1's outputs couples fc2's inputs.
Groups are only ever rooted there, so the embedding, the head, out_proj's and fc2's outputs (d_model) are
never touched: tied embeddings and the sinusoidal positions stay valid. Each SdpaAttention's num_heads is
then read back from its pruned q_proj.

A pruned model is described by the base config plus the kept head and channel indices of every layer
(`KeptUnits`); `rebuild` recreates its module tree from those, no pickled modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier

SCOPES = ("layer", "global")


@dataclass
class KeptUnits:
    """Original indices of the heads and FFN channels each layer keeps, ascending."""

    heads: list[list[int]]
    channels: list[list[int]]

    @classmethod
    def full(cls, config) -> KeptUnits:
        return cls([list(range(config.attention_heads)) for _ in range(config.num_layers)],
                   [list(range(config.ffn_dim)) for _ in range(config.num_layers)])

    def to_json(self) -> dict[str, Any]:
        return {"kept_heads": self.heads, "kept_channels": self.channels}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeptUnits:
        return cls([list(map(int, h)) for h in data["kept_heads"]], [list(map(int, c)) for c in data["kept_channels"]])


def check_level(config, level: float, scope: str = "layer") -> None:
    """Refuse a layer-wise level that would leave a layer with no head or no FFN channel (before any work)."""
    if not 0.0 <= level < 1.0:
        raise BenchError(f"structured sparsity must be in [0, 1) (the fraction of heads and FFN channels removed); got {level}")
    if scope != "layer":
        return  # global: known only once units are ranked; prune_to checks it
    heads, ffn = config.attention_heads, config.ffn_dim
    if round(level * heads) >= heads:
        raise BenchError(
            f"structured sparsity {level} would remove every head of each layer (round({level} x {heads} heads) = "
            f"{round(level * heads)}); the highest level that keeps one head is below {(heads - 0.5) / heads:.4g}"
        )
    if round(level * ffn) >= ffn:
        raise BenchError(f"structured sparsity {level} would remove every FFN channel of each layer ({ffn} channels)")


def scored_params(model: XGLMClassifier) -> dict[str, nn.Parameter]:
    """The tensors a head or channel score is summed from (weights and biases of the coupled linears)."""
    params = {}
    for i, layer in enumerate(model.backbone.layers):
        for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "fc1"):
            params[f"{i}.{name}.weight"] = layer.get_submodule(name).weight
            params[f"{i}.{name}.bias"] = layer.get_submodule(name).bias
        params[f"{i}.self_attn.out_proj.weight"] = layer.self_attn.out_proj.weight
        params[f"{i}.fc2.weight"] = layer.fc2.weight
    return params


def unit_scores(model: XGLMClassifier, element: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Element scores (keyed as scored_params) -> per layer: head scores [H_l] and channel scores [F_l]."""
    heads, channels = [], []
    for i, layer in enumerate(model.backbone.layers):
        attn = layer.self_attn
        rows = sum(element[f"{i}.self_attn.{p}_proj.weight"].sum(1) + element[f"{i}.self_attn.{p}_proj.bias"] for p in "qkv")
        rows = rows + element[f"{i}.self_attn.out_proj.weight"].sum(0)  # [H_l * Dh]
        heads.append(rows.view(attn.num_heads, attn.head_dim).sum(1).float().cpu())  # [H_l]
        chan = element[f"{i}.fc1.weight"].sum(1) + element[f"{i}.fc1.bias"] + element[f"{i}.fc2.weight"].sum(0)
        channels.append(chan.float().cpu())  # [F_l]
    return heads, channels


def prune_to(model: XGLMClassifier, kept: KeptUnits, level: float, scope: str,
             element_scores: dict[str, torch.Tensor]) -> KeptUnits:
    """Remove the lowest-scoring units until `level` of the base heads and channels are gone; returns what is kept.

    Levels are fractions of the base architecture, so iterative pruning (0.25, then 0.5) reaches the same
    counts as one-shot pruning to 0.5.
    """
    config = model.config
    head_scores, channel_scores = unit_scores(model, element_scores)
    drop_heads = _plan(head_scores, [len(h) for h in kept.heads], config.attention_heads, level, scope, "head")
    drop_channels = _plan(channel_scores, [len(c) for c in kept.channels], config.ffn_dim, level, scope, "FFN channel")
    remove_units(model, drop_heads, drop_channels)
    return KeptUnits(_without(kept.heads, drop_heads), _without(kept.channels, drop_channels))


def _without(kept: list[list[int]], drops: list[list[int]]) -> list[list[int]]:
    """Per layer: the original indices left once the units at positions `drops` are gone."""
    out = []
    for layer, drop in zip(kept, drops):
        gone = set(drop)
        out.append([index for pos, index in enumerate(layer) if pos not in gone])
    return out


def _plan(scores: list[torch.Tensor], now: list[int], base: int, level: float, scope: str, unit: str) -> list[list[int]]:
    """Positions (in each layer's current numbering) of the units to remove now."""
    layers = len(now)
    if scope == "layer":
        target = round(level * base)
        drops = [s.topk(max(0, target - (base - n)), largest=False).indices.sort().values.tolist()
                 for s, n in zip(scores, now)]
    elif scope == "global":
        flat = torch.cat(scores)
        count = max(0, round(level * base * layers) - (base * layers - sum(now)))
        chosen = set(flat.topk(count, largest=False).indices.tolist())
        starts = [sum(now[:i]) for i in range(layers)]
        drops = [sorted(j - starts[i] for j in chosen if starts[i] <= j < starts[i] + now[i]) for i in range(layers)]
    else:
        raise ValueError(f"unknown sparsity scope '{scope}'; available: {', '.join(SCOPES)}")
    for i, (n, d) in enumerate(zip(now, drops)):
        if len(d) >= n:
            raise BenchError(
                f"structured sparsity {level} ({scope} scope) would remove every {unit} of layer {i}; "
                f"lower the level" + (" or use sparsity_scope = 'layer'" if scope == "global" else "")
            )
    return drops


def require_torch_pruning():
    try:
        import torch_pruning
    except ImportError:
        raise BenchError("method 'structured' needs torch-pruning: pip install 'torch-pruning>=1.6,<2'") from None
    return torch_pruning


def remove_units(model: XGLMClassifier, heads: list[list[int]], channels: list[list[int]]) -> None:
    """Physically remove heads and FFN channels (positions in each layer's current numbering) with DepGraph."""
    if not any(heads) and not any(channels):
        return
    tp = require_torch_pruning()
    device = model.head.weight.device
    example = (torch.full((1, 8), 4, dtype=torch.long, device=device), torch.ones(1, 8, dtype=torch.long, device=device))
    was_training = model.training
    with torch.enable_grad(), _trainable(model):
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=example, output_transform=lambda logits: logits, verbose=False,
        )
    for i, layer in enumerate(model.backbone.layers):
        attn = layer.self_attn
        if heads[i]:
            idxs = [h * attn.head_dim + d for h in heads[i] for d in range(attn.head_dim)]
            group = graph.get_pruning_group(attn.q_proj, tp.prune_linear_out_channels, idxs)
            _check_group(graph, group, {(attn.q_proj, "out"), (attn.k_proj, "out"), (attn.v_proj, "out"),
                                        (attn.out_proj, "in")}, f"layer {i} heads")
            group.prune()
            attn.num_heads = attn.q_proj.out_features // attn.head_dim
        if channels[i]:
            group = graph.get_pruning_group(layer.fc1, tp.prune_linear_out_channels, list(channels[i]))
            _check_group(graph, group, {(layer.fc1, "out"), (layer.fc2, "in")}, f"layer {i} FFN channels")
            group.prune()
    model.train(was_training)  # DepGraph's trace leaves the model in eval mode


def _check_group(graph, group, expected: set[tuple[nn.Module, str]], what: str) -> None:
    """The group must touch exactly the linears we mean: a changed trace must fail here, not prune d_model."""
    touched = set()
    for dep, _ in group:
        module = dep.target.module
        if isinstance(module, nn.Linear):
            touched.add((module, "out" if graph.is_out_channel_pruning_fn(dep.handler) else "in"))
        elif isinstance(module, nn.Module) and any(True for _ in module.parameters(recurse=False)):
            touched.add((module, "other"))  # a LayerNorm or embedding: d_model would be cut
    if touched != expected:
        raise RuntimeError(f"torch-pruning grouped unexpected layers when removing {what}; refusing to prune")


class _trainable:
    """DepGraph traces through grad_fn: every parameter must require grad while it builds."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.frozen = [p for p in self.model.parameters() if not p.requires_grad]
        for p in self.frozen:
            p.requires_grad_(True)

    def __exit__(self, *exc) -> None:
        for p in self.frozen:
            p.requires_grad_(False)


def rebuild(backbone_config: dict[str, Any], num_labels: int, kept: KeptUnits) -> XGLMClassifier:
    """The pruned module tree, from the base config and the kept indices; the caller loads the weights."""
    from transformers import XGLMConfig, XGLMModel

    config = XGLMConfig.from_dict(backbone_config)
    model = XGLMClassifier(XGLMModel(config), num_labels)
    heads = [sorted(set(range(config.attention_heads)) - set(h)) for h in kept.heads]
    channels = [sorted(set(range(config.ffn_dim)) - set(c)) for c in kept.channels]
    remove_units(model, heads, channels)
    return model.eval()


@torch.no_grad()
def zero_units(model: XGLMClassifier, kept: KeptUnits) -> None:
    """The dense equivalent of a pruned model: zero what removal would take away, in a model of the base shape.

    A head whose q, k and v rows and biases are zero attends uniformly to zero values, so its output is zero
    and its out_proj columns see nothing; a channel whose fc1 row and bias are zero gives GELU(0) = 0.
    """
    for layer, heads, channels in zip(model.backbone.layers, kept.heads, kept.channels):
        attn = layer.self_attn
        dropped = sorted(set(range(attn.num_heads)) - set(heads))
        cols = [h * attn.head_dim + d for h in dropped for d in range(attn.head_dim)]
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
            proj.weight[cols] = 0
            proj.bias[cols] = 0
        attn.out_proj.weight[:, cols] = 0
        gone = sorted(set(range(layer.fc1.out_features)) - set(channels))
        layer.fc1.weight[gone] = 0
        layer.fc1.bias[gone] = 0
        layer.fc2.weight[:, gone] = 0
