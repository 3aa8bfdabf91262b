"""The P-tuning v2 prefix encoder (Liu et al., 2022): trainable keys and values for every layer's attention.

Without reparameterisation the prefix is one table [P, width]; with it, an embedding [P, d_model] goes through
an MLP (d_model -> hidden -> tanh -> width). The last dimension holds, layer after layer, that layer's keys
then its values, each heads_l x head_dim wide. With the same head count everywhere this is PEFT's layout
(layers x {key, value} x heads x head_dim), so PEFT's PrefixEncoder weights load here unchanged; after
structured pruning each layer's block is as wide as the heads it kept. After training, `fold()` evaluates the
encoder once; the MLP is gone and only per-layer K/V remain.
"""

from __future__ import annotations

import torch
from torch import nn


class PrefixEncoder(nn.Module):
    def __init__(
        self, prefix_length: int, num_layers: int, num_heads: int | list[int], head_dim: int, *,
        mlp_hidden: int | None = None, dropout: float = 0.0, d_model: int | None = None,
    ) -> None:
        super().__init__()
        heads = [num_heads] * num_layers if isinstance(num_heads, int) else list(num_heads)
        if len(heads) != num_layers:
            raise ValueError(f"{len(heads)} head counts for {num_layers} layers")
        self.prefix_length, self.num_layers, self.head_dim = prefix_length, num_layers, head_dim
        self.heads = heads  # per layer
        d_model = d_model or heads[0] * head_dim  # the embedding width of the MLP's input
        width = 2 * sum(heads) * head_dim
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
        """Per layer (key, value), each [1, heads_l, P, head_dim]; dropout applies in training mode only."""
        table = self.embedding.weight  # [P, d] or [P, width]
        if self.transform is not None:
            table = self.transform(table)  # [P, width]
        table = self.dropout(table)
        blocks = table.split([h * self.head_dim for h in self.heads for _ in "kv"], dim=-1)  # 2L x [P, H_l*Dh]
        out = []
        for i, heads in enumerate(self.heads):
            key, value = (b.view(self.prefix_length, heads, self.head_dim).permute(1, 0, 2).unsqueeze(0)
                          for b in blocks[2 * i: 2 * i + 2])  # [1, H_l, P, Dh]
            out.append((key, value))
        return out

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
        """An encoder shaped for an XGLMClassifier: each layer's prefix as wide as the heads that layer has (a
        structurally pruned model keeps different counts per layer)."""
        attns = model.attentions
        return cls(prefix_length, len(attns), [a.num_heads for a in attns], attns[0].head_dim,
                   mlp_hidden=mlp_hidden, dropout=dropout, d_model=model.config.d_model)
