"""XGLM self-attention on scaled_dot_product_attention, with an optional per-layer prefix K/V slot.

transformers' XGLMAttention is eager bmm only (asking for "sdpa" raises). This module reuses its projection
layers unchanged (same parameter names, so checkpoints load as they are) and computes the same function with
one SDPA call. The prefix slot holds P extra keys and values, [1, heads, P, head_dim], placed in front of the
layer's own keys and always visible: this is how prompts/ folds a P-tuning v2 prefix into a static model.

Two attention paths (bench.model.classifier chooses): with a padding mask, bool [B, 1, T, P+T]; or without one
(mask None): causal over the layer's own tokens with the prefix always visible (`causal_attention`). With right
padding, real queries never see the padding that follows them, so real positions get the same result either way;
only padded positions differ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.bias import causal_lower_right


class SdpaAttention(nn.Module):
    def __init__(
        self,
        q_proj: nn.Linear,
        k_proj: nn.Linear,
        v_proj: nn.Linear,
        out_proj: nn.Linear,
        head_dim: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if q_proj.out_features % head_dim:
            raise ValueError(f"q_proj width {q_proj.out_features} is not a multiple of head_dim {head_dim}")
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = q_proj, k_proj, v_proj, out_proj
        self.head_dim = head_dim
        # Derived from the projection, not the config: structured pruning changes the head count per layer.
        self.num_heads = q_proj.out_features // head_dim
        self.dropout = dropout
        self.prefix_k: torch.Tensor | None = None
        self.prefix_v: torch.Tensor | None = None

    @classmethod
    def from_xglm(cls, attn: nn.Module) -> "SdpaAttention":
        """Wrap an XGLMAttention's own projection layers (shared, not copied)."""
        return cls(attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, attn.head_dim, attn.dropout)

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix_k is None else int(self.prefix_k.shape[2])

    def set_prefix(self, key: torch.Tensor | None, value: torch.Tensor | None, *, persistent: bool = True) -> None:
        """Fill (or clear, with None) the prefix slot; key/value: [1, heads, P, head_dim].

        persistent: a folded prefix, saved with the state dict and exported as a constant (a buffer).
        Otherwise the tensors are kept as they are, graph included: how a prefix encoder trains through it.
        """
        for name in ("prefix_k", "prefix_v"):
            self._buffers.pop(name, None)
            self.__dict__.pop(name, None)
        if key is None or value is None:
            self.prefix_k = self.prefix_v = None
            return
        expected = (1, self.num_heads, key.shape[2], self.head_dim)
        if tuple(key.shape) != expected or tuple(value.shape) != expected:
            raise ValueError(
                f"prefix K/V must both have shape {expected} for this layer; got {tuple(key.shape)} and {tuple(value.shape)}"
            )
        if persistent:
            self.register_buffer("prefix_k", key.detach().clone(), persistent=True)
            self.register_buffer("prefix_v", value.detach().clone(), persistent=True)
        else:
            self.prefix_k, self.prefix_v = key, value

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **_: object,
    ) -> tuple[torch.Tensor, None]:
        """hidden_states: [B, T, D]; attention_mask: bool [B, 1, T, P + T] (True = may attend), or None for causal
        attention without a padding mask (`causal_attention`)."""
        bsz, tgt_len, width = hidden_states.shape
        shape = (bsz, tgt_len, self.num_heads, self.head_dim)
        shared = all(getattr(proj, "reads_transposed", False) for proj in (self.q_proj, self.k_proj, self.v_proj))
        if shared:
            hidden_states = _rows_of(hidden_states.reshape(-1, width).t().contiguous(), bsz, tgt_len)  # one x^T for all three
        q = self.q_proj(hidden_states).view(shape).transpose(1, 2)  # [B, H, T, Dh]
        k = self.k_proj(hidden_states).view(shape).transpose(1, 2)  # [B, H, T, Dh]
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)  # [B, H, T, Dh]
        # A kernel linear's output is an x^T view (head_dim not innermost): SDPA's fused CPU kernel refuses it and
        # falls back to its slower math path; one copy each costs less (random:small, 90 % CSR: 1.43x -> 1.51x).
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
        if self.prefix_k is not None:
            k = torch.cat([self.prefix_k.to(k.dtype).expand(bsz, -1, -1, -1), k], dim=2)  # [B, H, P+T, Dh]
            v = torch.cat([self.prefix_v.to(v.dtype).expand(bsz, -1, -1, -1), v], dim=2)  # [B, H, P+T, Dh]
        mask, is_causal = (attention_mask, False) if attention_mask is not None else causal_attention(
            tgt_len, self.prefix_length, q.device)
        # SDPA's default scale is head_dim**-0.5, the scaling XGLM applies to q: applied once, here.
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, T, Dh]
        inner = self.num_heads * self.head_dim  # below the model's width once heads are pruned
        if getattr(self.out_proj, "reads_transposed", False):  # written straight into the x^T it multiplies
            out = _rows_of(out.permute(1, 3, 0, 2).reshape(inner, -1), bsz, tgt_len)
        else:
            out = out.transpose(1, 2).reshape(bsz, tgt_len, inner)
        return self.out_proj(out), None


def _rows_of(x_t: torch.Tensor, bsz: int, tgt_len: int) -> torch.Tensor:
    """A contiguous x^T [D, B*T] as the [B, T, D] view a linear that `reads_transposed` takes without copying
    (sparsify.kernels.CompressedLinear: MKL multiplies W x^T, so any other layout is transposed per linear)."""
    return x_t.t().view(bsz, tgt_len, x_t.shape[0])


def causal_attention(query_len: int, prefix_length: int, device: torch.device) -> tuple[object | None, bool]:
    """SDPA's (attn_mask, is_causal) for causal attention with no padding mask: query i sees the prefix and the
    keys up to its own position, i.e. key j <= i + P (bottom-right alignment).

    No prefix: `is_causal`, which admits flash attention on CUDA and the fused kernel on the CPU. With a prefix,
    `is_causal` would be wrong: torch aligns it top-left when keys outnumber queries (query 0 would see key 0 only).
    Eager gets `causal_lower_right` (flash and memory-efficient kernels on CUDA; on the CPU torch materialises it).
    torch.compile and torch.export cannot trace that tensor subclass, so they get the same mask as a bool
    [T, P+T] tensor, shared by the whole batch (ONNX: one onnx::Attention mask input instead of [B, 1, T, P+T]).
    """
    if not prefix_length:
        return None, True
    key_len = prefix_length + query_len
    if not torch.compiler.is_compiling():
        return causal_lower_right(query_len, key_len), False
    keys = torch.arange(key_len, device=device).view(1, -1)  # [1, P+T]
    queries = torch.arange(query_len, device=device).view(-1, 1)  # [T, 1]
    return keys <= queries + prefix_length, False  # [T, P+T]
