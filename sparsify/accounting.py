"""Sparsity accounting: what a variant keeps, what its kernels compute, and the speedup that could buy at best.

All counts come from the model as it is (real shapes, real nonzeros, prompts and adapters included) against its
base architecture (the unpruned config it was built from), so a structurally pruned model, a masked one and a
prompt or LoRA on either read the same way.

Per token, per decoder layer l, with H_l heads of Dh, F_l FFN channels, d = d_model, T tokens, a prefix of P
keys (P-tuning v2, or a soft prompt folded into keys and values), S soft-prompt tokens at the input and
unmerged LoRA adapters of rank r on some linears:

    linear MACs    L_l = 3 d H_l Dh + H_l Dh d + 2 d F_l      (q, k, v, out_proj, fc1, fc2: one MAC per weight)
    adapter MACs   R_l = sum over adapted linears of r (in + out)   (0 when merged: merging costs nothing)
    attention MACs A_l = 2 H_l Dh (P + S + T)                   (Q K^T and A V over every key: SDPA with a mask)

S input tokens go through every layer like real ones, so each real token carries (S + T) / T of the work:

- `macs_per_token` = (S + T) / T x sum_l (L_l + R_l + A_l): what dense kernels execute on the real shapes.
- `macs_per_token_nonzero` = the same with nnz_l, the nonzero weights of layer l's linears, for L_l: the work
  a perfect sparse kernel would do.
- `linear_mac_share` = sum_l (L_l + R_l) / sum_l (L_l + R_l + A_l): Amdahl's f for this model.
- `speedup_ideal` = M_dense / M_exec, where M_dense = sum_l (L0 + 2 H0 Dh T) is the base architecture with
  no prefix at the same T and M_exec is what the mechanism executes:
      none                 M_exec = macs_per_token                (zeros in dense kernels: same shapes)
      smaller_gemm         M_exec = macs_per_token                (the shapes themselves are smaller)
      sparse_tensor_cores  M_exec = (S + T) / T x sum_l (L_l / 2 + R_l + A_l)   (2:4 halves the base linears)
      sparse_kernel        M_exec = (S + T) / T x sum_l (E_l + R_l + A_l), E_l what layer l's kernels execute:
                           a compressed linear's stored values (CSR: its nonzeros; BSR: its kept blocks whole),
                           a dense one's full weight; Amdahl for the kernels' share of the FLOPs
  For 2:4 this is Amdahl's law 1 / ((1 - f) + f / 2) with f the dense linear share. The embedding lookup,
  LayerNorms, softmax, GELU and the head (one token per sequence) are counted as free, so the ideal is an
  upper bound: real kernels reach 1.1-1.4x per 2:4 GEMM and less at small batch.
- `density_linear` = nonzero decoder-linear weights / decoder-linear weights of the base architecture.
- `density_all` = nonzero parameters / parameters of the base architecture (embedding, norms, biases, head
  and a folded prefix included; the embedding's padding row is zero in XGLM, so dense is just under 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.model.classifier import XGLMClassifier, count_parameters, weight_tensors
from sparsify.targets import DECODER_LINEARS

MECHANISMS = ("none", "smaller_gemm", "sparse_kernel", "sparse_tensor_cores")


@dataclass(frozen=True)
class SparsityCounts:
    d_model: int
    head_dim: int
    base_heads: int
    base_ffn: int
    num_layers: int
    prefix_length: int
    heads: tuple[int, ...]  # per layer, as the model is
    ffn: tuple[int, ...]  # FFN channels per layer, as the model is
    linear_weights: tuple[int, ...]  # per layer: weights of the six decoder linears (real shapes)
    linear_nonzero: tuple[int, ...]  # per layer: their nonzeros
    params: int  # parameters as the model is (count_parameters: shared once, folded prefix included)
    params_nonzero: int
    base_params: int  # parameters of the unpruned architecture, same prefix
    input_prompt_length: int = 0  # S: soft-prompt tokens run through every layer
    adapter_macs: tuple[int, ...] = ()  # per layer: unmerged LoRA adapters' MACs per token
    linear_executed: tuple[int, ...] = ()  # per layer: MACs per token its linears' kernels do (sparse kernels: nnz)

    @property
    def base_linear_weights(self) -> int:
        return self.num_layers * (4 * self.d_model * self.base_heads * self.head_dim + 2 * self.d_model * self.base_ffn)

    @property
    def density_linear(self) -> float:
        return sum(self.linear_nonzero) / self.base_linear_weights

    @property
    def density_all(self) -> float:
        return self.params_nonzero / self.base_params

    def attention_macs(self, seq_len: int, heads: tuple[int, ...] | None = None, prefix: int | None = None) -> int:
        prefix = self.prefix_length if prefix is None else prefix
        return sum(2 * h * self.head_dim * (prefix + seq_len) for h in (heads or self.heads))

    def _per_real_token(self, linear_macs: float, seq_len: int) -> float:
        """MACs of every token of the forward (input prompt included) over the real tokens."""
        tokens = self.input_prompt_length + seq_len
        per_token = linear_macs + sum(self.adapter_macs) + self.attention_macs(tokens)
        return per_token * tokens / seq_len if self.input_prompt_length else per_token

    def macs_per_token(self, seq_len: int) -> float:
        return self._per_real_token(sum(self.linear_weights), seq_len)

    def macs_per_token_nonzero(self, seq_len: int) -> float:
        return self._per_real_token(sum(self.linear_nonzero), seq_len)

    def dense_macs_per_token(self, seq_len: int) -> int:
        """The base architecture's MACs per token at seq_len, no prefix: what speedup_vs_dense compares against."""
        return self.base_linear_weights + self.attention_macs(seq_len, (self.base_heads,) * self.num_layers, 0)

    def executed_macs_per_token(self, seq_len: int, mechanism: str) -> float:
        if mechanism in ("none", "smaller_gemm"):
            return float(self.macs_per_token(seq_len))
        if mechanism == "sparse_kernel":
            return self._per_real_token(sum(self.linear_executed or self.linear_weights), seq_len)
        if mechanism == "sparse_tensor_cores":
            return self._per_real_token(sum(self.linear_weights) / 2, seq_len)
        raise ValueError(f"unknown speedup mechanism '{mechanism}'; known: {', '.join(MECHANISMS)}")

    def speedup_ideal(self, seq_len: int, mechanism: str) -> float:
        return self.dense_macs_per_token(seq_len) / self.executed_macs_per_token(seq_len, mechanism)

    def fields(self, seq_len: int, mechanism: str | None = None) -> dict[str, Any]:
        """Record fields at a sequence length; with a mechanism, the ideal speedup it allows there."""
        linear = sum(self.linear_weights) + sum(self.adapter_macs)
        out: dict[str, Any] = {
            "density_linear": self.density_linear,
            "density_all": self.density_all,
            "macs_per_token": self.macs_per_token(seq_len),
            "macs_per_token_nonzero": self.macs_per_token_nonzero(seq_len),
            "macs_seq_len": seq_len,
            "linear_mac_share": linear / (linear + self.attention_macs(self.input_prompt_length + seq_len)),
            "heads_per_layer": list(self.heads),
            "ffn_channels_per_layer": list(self.ffn),
        }
        if any(self.adapter_macs):
            out["adapter_macs_per_token"] = sum(self.adapter_macs)
        if mechanism is not None:
            out["speedup_ideal"] = self.speedup_ideal(seq_len, mechanism)
        return out


@torch.no_grad()
def count(model: XGLMClassifier) -> SparsityCounts:
    config = model.config
    layers = model.backbone.layers
    head_dim = layers[0].self_attn.head_dim
    heads, ffn, weights, nonzero, adapters, executed, base_params_missing = [], [], [], [], [], [], 0
    for layer in layers:
        attn = layer.self_attn
        wrapped = [layer.get_submodule(name) for name in DECODER_LINEARS]
        linears = [getattr(m, "base_layer", m) for m in wrapped]  # under a LoRA adapter, the frozen linear
        adapters.append(sum(getattr(m, "adapter_macs_per_token", 0) for m in wrapped))
        heads.append(attn.num_heads)
        ffn.append(layer.fc1.out_features)
        weights.append(sum(lin.weight.numel() for lin in linears))
        nonzero.append(sum(int(torch.count_nonzero(lin.weight)) for lin in linears))
        executed.append(sum(getattr(lin, "executed_macs_per_token", lin.weight.numel()) for lin in linears))
        # A compressed linear (sparsify.kernels) stores only its values: its zeros are still the architecture's.
        base_params_missing += sum(lin.weight.numel() - lin.nnz for lin in linears if hasattr(lin, "nnz"))
        # What structured pruning took away: per head q/k/v rows and biases plus out_proj columns (and any
        # folded prefix K/V of that head); per channel an fc1 row, its bias and an fc2 column.
        missing_heads = config.attention_heads - attn.num_heads
        prefix = 2 * attn.prefix_length * head_dim if attn.prefix_length else 0
        base_params_missing += missing_heads * (head_dim * (4 * config.d_model + 3) + prefix)
        base_params_missing += (config.ffn_dim - layer.fc1.out_features) * (2 * config.d_model + 1)
    params, _ = count_parameters(model)
    return SparsityCounts(
        d_model=config.d_model, head_dim=head_dim, base_heads=config.attention_heads, base_ffn=config.ffn_dim,
        num_layers=config.num_layers, prefix_length=model.prefix_length, heads=tuple(heads), ffn=tuple(ffn),
        linear_weights=tuple(weights), linear_nonzero=tuple(nonzero), params=params,
        params_nonzero=_nonzero_parameters(model), base_params=params + base_params_missing,
        input_prompt_length=model.input_prompt_length, adapter_macs=tuple(adapters), linear_executed=tuple(executed),
    )


def _nonzero_parameters(model: XGLMClassifier) -> int:
    """Nonzeros over the same tensors count_parameters counts."""
    return sum(int(torch.count_nonzero(t)) for t in weight_tensors(model))
