"""FLOPs and minimum bytes of one classifier forward, from the module's actual shapes.

Read off the live module, so pruned heads and FFN channels, a folded prefix and the head size are all
counted as they are. Two FLOP counts: `executed` is what dense kernels compute (zeros included), what
achieved TFLOP/s must be divided by; `nonzero` counts only multiplications by nonzero weights, the work a
perfect sparse kernel would do. Minimum bytes is the traffic no implementation can avoid: every weight read
once, the gathered embedding rows, the inputs and the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ForwardCost:
    flops_executed: float
    flops_nonzero: float
    flops_linear_executed: float  # decoder-layer linears: the part sparsity and pruning act on
    flops_attention: float  # QK^T and AV, including the prefix columns
    min_bytes: float

    @property
    def linear_share(self) -> float:
        """Share of executed FLOPs in the decoder linears (the Amdahl fraction for linear-only speedups)."""
        return self.flops_linear_executed / self.flops_executed

    @property
    def intensity(self) -> float:
        """FLOPs per byte of unavoidable traffic."""
        return self.flops_executed / self.min_bytes

    def record(self) -> dict[str, float]:
        return {
            "flops_per_forward": self.flops_executed, "flops_nonzero_per_forward": self.flops_nonzero,
            "linear_flop_share": self.linear_share, "min_bytes_per_forward": self.min_bytes,
            "arithmetic_intensity": self.intensity,
        }


def forward_cost(model, batch_size: int, seq_len: int, dtype: torch.dtype = torch.float32) -> ForwardCost:
    """Cost of model(input_ids [B, T], attention_mask [B, T]) for an XGLMClassifier (any pruning or prefix; a soft
    prompt of S input tokens runs B x S more tokens through every layer; unmerged LoRA adds its adapters)."""
    seq_len += model.input_prompt_length  # T + S tokens per sequence go through the layers
    tokens = batch_size * seq_len
    itemsize = torch.empty((), dtype=dtype).element_size()
    linear_exec = linear_nonzero = attention = 0.0
    weight_bytes = 0.0
    prefix = model.prefix_length
    for layer in model.backbone.layers:
        attn = layer.self_attn
        width = attn.num_heads * attn.head_dim
        for linear in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, layer.fc1, layer.fc2):
            base = getattr(linear, "base_layer", linear)  # a sparse kernel executes its stored values only
            linear_exec += 2 * tokens * getattr(base, "executed_macs_per_token", linear.in_features * linear.out_features)
            linear_nonzero += 2 * tokens * int(torch.count_nonzero(linear.weight))
            adapter = 2 * tokens * getattr(linear, "adapter_macs_per_token", 0)  # LoRA kept apart: r (in + out)
            linear_exec, linear_nonzero = linear_exec + adapter, linear_nonzero + adapter
        # Scores and weighted sum over P + T keys for every query (SDPA computes the masked entries too).
        attention += 2 * 2 * batch_size * seq_len * (seq_len + prefix) * width
        weight_bytes += sum(p.numel() for p in layer.parameters()) * itemsize
    weight_bytes += 2 * prefix * sum(a.num_heads * a.head_dim for a in model.attentions) * itemsize
    head = model.head
    head_flops = 2 * batch_size * head.in_features * head.out_features
    weight_bytes += sum(p.numel() for p in head.parameters()) * itemsize
    weight_bytes += sum(p.numel() for p in model.backbone.layer_norm.parameters()) * itemsize
    d_model = model.config.d_model
    gathered = 2 * tokens * d_model * itemsize  # token and position embedding rows actually read
    io = 2 * tokens * 8 + batch_size * head.out_features * 4  # int64 ids and mask in, float32 logits out
    return ForwardCost(
        flops_executed=linear_exec + attention + head_flops,
        flops_nonzero=linear_nonzero + attention + head_flops,
        flops_linear_executed=linear_exec,
        flops_attention=attention,
        min_bytes=weight_bytes + gathered + io,
    )


def weight_bytes(module: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes of parameters and persistent buffers as held in memory (at `dtype` if given)."""
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}.values()
    return sum(t.numel() * (torch.empty((), dtype=dtype).element_size() if dtype else t.element_size()) for t in tensors)
