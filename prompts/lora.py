"""LoRA (Hu et al., 2021) on the decoder linears of an XGLMClassifier, the function PEFT's LoraConfig computes.

    y = base(x) + scaling * B(A(dropout(x)))      A: [r, in], B: [out, r], scaling = alpha / r

A starts Kaiming-uniform (a = sqrt(5)) and B at zero, as in PEFT, so training starts from the base model.
Dropout applies to the adapter's input only, in training mode. `merge_lora` folds the update into a plain
nn.Linear (W + scaling * B @ A): the dense model's shapes and cost. The wrapped linear stays a submodule
(`base_layer`, PEFT's name), so a 2:4 base's kernels still see a plain nn.Linear (sparsify.targets).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prompts.methods import LORA_TARGETS
from bench.model.classifier import XGLMClassifier

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")  # on SdpaAttention; fc1, fc2 on the decoder layer


@dataclass(frozen=True)
class LoraOptions:
    """A variant's LoRA options with defaults resolved (PEFT's: r 8, alpha 8, dropout 0; Hu et al.'s q and v)."""

    rank: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    merge: bool = True

    @classmethod
    def of(cls, variant) -> LoraOptions:
        given = {"rank": variant.lora_rank, "alpha": variant.lora_alpha, "dropout": variant.lora_dropout,
                 "targets": tuple(variant.lora_targets) if variant.lora_targets else None, "merge": variant.lora_merge}
        return cls(**{k: v for k, v in given.items() if v is not None})

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout, "targets": list(self.targets),
                "merge": self.merge}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoraOptions:
        return cls(int(data["rank"]), float(data["alpha"]), float(data["dropout"]), tuple(data["targets"]), bool(data["merge"]))


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base_layer = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.rank, self.scaling = rank, alpha / rank
        kw = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **kw))  # [r, in]
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **kw))  # [out, r]
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight, so code that reads a decoder linear's weight (accounting, FLOPs) still can."""
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [..., in]
        update = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)  # [..., out] through [..., r]
        return self.base_layer(x) + update * self.scaling

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain nn.Linear with W + scaling * B @ A: what inference keeps when merged."""
        base = self.base_layer
        out = nn.Linear(self.in_features, self.out_features, bias=base.bias is not None,
                        dtype=base.weight.dtype, device=base.weight.device)
        out.weight.copy_(base.weight + self.scaling * (self.lora_B @ self.lora_A))
        if base.bias is not None:
            out.bias.copy_(base.bias)
        return out.requires_grad_(base.weight.requires_grad)

    @property
    def adapter_macs_per_token(self) -> int:
        """The adapter's extra multiply-accumulates per token when unmerged: r x (in + out)."""
        return self.rank * (self.in_features + self.out_features)


def sites(model: XGLMClassifier, targets: Sequence[str] = LORA_TARGETS) -> Iterator[tuple[str, nn.Module, str]]:
    """('backbone.layers.{i}.{self_attn.}name', owner module, attribute) for each target of every layer."""
    for i, layer in enumerate(model.backbone.layers):
        for name in targets:
            if name in ATTENTION_TARGETS:
                yield f"backbone.layers.{i}.self_attn.{name}", layer.self_attn, name
            else:
                yield f"backbone.layers.{i}.{name}", layer, name


def add_lora(model: XGLMClassifier, opts: LoraOptions) -> list[nn.Parameter]:
    """Wrap every target linear (shapes as they are: a pruned layer gets smaller adapters); returns the new
    parameters. Call after moving the model; the train/eval mode is the model's."""
    params = []
    for _, owner, name in sites(model, opts.targets):
        wrapped = LoRALinear(getattr(owner, name), opts.rank, opts.alpha, opts.dropout)
        setattr(owner, name, wrapped)
        params += [wrapped.lora_A, wrapped.lora_B]
    model.train(model.training)  # new modules start in training mode: their dropout must follow the model's
    return params


def merge_lora(model: XGLMClassifier) -> None:
    for _, owner, name in sites(model):
        module = getattr(owner, name)
        if isinstance(module, LoRALinear):
            setattr(owner, name, module.merged())


def adapter_state(model: XGLMClassifier) -> dict[str, torch.Tensor]:
    """'<site>.lora_A' / '<site>.lora_B' -> tensor, for every wrapped site: what the artifact stores."""
    out = {}
    for key, owner, name in sites(model):
        module = getattr(owner, name)
        if isinstance(module, LoRALinear):
            out[f"{key}.lora_A"], out[f"{key}.lora_B"] = module.lora_A.detach(), module.lora_B.detach()
    return out
