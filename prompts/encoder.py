"""The P-tuning v2 prefix encoder (Liu et al., 2022): trainable keys and values for every layer's attention.

Without reparameterisation the prefix is one table [P, 2 x layers x d_model]; with it, an embedding [P, d_model]
goes through an MLP (d_model -> hidden -> tanh -> 2 x layers x d_model). The layout of that last dimension is
PEFT's (layers x {key, value} x heads x head_dim), so PEFT's PrefixEncoder weights load here unchanged. After
training, `fold()` evaluates the encoder once; the MLP is gone and only per-layer K/V remain.
"""

from __future__ import annotations

import torch
from torch import nn


class PrefixEncoder(nn.Module):
    def __init__(
        self, prefix_length: int, num_layers: int, num_heads: int, head_dim: int, *,
        mlp_hidden: int | None = None, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.prefix_length, self.num_layers, self.num_heads, self.head_dim = prefix_length, num_layers, num_heads, head_dim
        d_model = num_heads * head_dim
        width = 2 * num_layers * d_model
        if mlp_hidden:
            self.embedding = nn.Embedding(prefix_length, d_model)
            self.transform: nn.Module | None = nn.Sequential(
                nn.Linear(d_model, mlp_hidden), nn.Tanh(), nn.Linear(mlp_hidden, width)
            )
        else:
            self.embedding = nn.Embedding(prefix_length, width)
            self.transform = None
        self.dropout = nn.Dropout(dropout)

    def forward(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (key, value), each [1, heads, P, head_dim]; dropout applies in training mode only."""
        table = self.embedding.weight  # [P, d] or [P, 2*L*d]
        if self.transform is not None:
            table = self.transform(table)  # [P, 2*L*d]
        table = self.dropout(table)
        kv = table.view(self.prefix_length, 2 * self.num_layers, self.num_heads, self.head_dim)  # [P, 2L, H, Dh]
        kv = kv.permute(1, 2, 0, 3).unsqueeze(1)  # [2L, 1, H, P, Dh]
        return [(kv[2 * i], kv[2 * i + 1]) for i in range(self.num_layers)]

    @torch.no_grad()
    def fold(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The prefix as plain tensors (MLP evaluated, no dropout): what inference keeps."""
        was_training = self.training
        self.eval()
        try:
            return [(k.detach().clone(), v.detach().clone()) for k, v in self()]
        finally:
            self.train(was_training)

    @classmethod
    def for_model(cls, model, prefix_length: int, *, mlp_hidden: int | None = None, dropout: float = 0.0) -> "PrefixEncoder":
        """An encoder shaped for an XGLMClassifier (heads per layer read from its attention modules)."""
        heads = {a.num_heads for a in model.attentions}
        if len(heads) != 1:
            raise ValueError(f"layers have different head counts {sorted(heads)}; a shared prefix table needs one")
        attn = model.attentions[0]
        return cls(prefix_length, len(model.attentions), attn.num_heads, attn.head_dim, mlp_hidden=mlp_hidden, dropout=dropout)
