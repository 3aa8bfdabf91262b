"""The XGLM sequence classifier: backbone + linear head on the last non-pad token (right padding).

transformers has no XGLM sequence-classification class. Ours runs the backbone's own submodules with its own
mask and positions, so that a folded prefix (positions P..P+T-1, keys always visible) and ONNX export with
dynamic shapes stay under our control; attention is bench.model.attention.SdpaAttention.

An optional input prompt (a soft prompt, Lester et al. 2021) is P embeddings placed in front of the token
embeddings and run through every layer, as PEFT's PromptTuningConfig does; without one, nothing changes.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import XGLMConfig, XGLMModel

from bench.model.attention import SdpaAttention


class XGLMClassifier(nn.Module):
    """XGLM backbone + linear head on the last non-pad token. forward(input_ids, attention_mask) -> logits."""

    # How forward() attends. "causal": no padding mask (bench.model.attention.causal_attention), exact for its
    # logits because batches are right padded and only the last real token is pooled; the fast path. "masked":
    # the [B, 1, T, P+T] padding mask, as hidden_states() always uses (it returns padded positions too).
    attention_path: str = "causal"

    def __init__(self, backbone: XGLMModel, num_labels: int) -> None:
        super().__init__()
        for layer in backbone.layers:
            if not isinstance(layer.self_attn, SdpaAttention):
                layer.self_attn = SdpaAttention.from_xglm(layer.self_attn)
        self.backbone = backbone
        self.dropout = nn.Dropout(backbone.config.dropout)
        self.head = nn.Linear(backbone.config.d_model, num_labels)
        self.input_prompt: torch.Tensor | None = None  # [P, d_model] soft prompt, or None

    @property
    def config(self) -> XGLMConfig:
        return self.backbone.config

    @property
    def attentions(self) -> list[SdpaAttention]:
        return [layer.self_attn for layer in self.backbone.layers]

    @property
    def prefix_length(self) -> int:
        return self.attentions[0].prefix_length

    @property
    def input_prompt_length(self) -> int:
        return 0 if self.input_prompt is None else int(self.input_prompt.shape[0])

    def set_input_prompt(self, table: torch.Tensor | None, *, persistent: bool = True) -> None:
        """Fill (or clear, with None) the input prompt; table: [P, d_model], used as given (never scaled by
        sqrt(d_model): PEFT's virtual tokens skip the scaling that real token embeddings get).

        persistent: a trained prompt, saved with the state dict and exported as a constant (a buffer).
        Otherwise the tensor is kept as it is, graph included, and never registered: the trainer owns it.
        """
        self._buffers.pop("input_prompt", None)
        self.__dict__.pop("input_prompt", None)
        if table is None:
            self.__dict__["input_prompt"] = None
            return
        if table.dim() != 2 or table.shape[1] != self.config.d_model:
            raise ValueError(f"an input prompt must have shape [P, {self.config.d_model}]; got {tuple(table.shape)}")
        if persistent:
            self.register_buffer("input_prompt", table.detach().clone(), persistent=True)
        else:
            self.__dict__["input_prompt"] = table

    @property
    def position_offset(self) -> int:
        """Real tokens are numbered after the prefix, as transformers numbers tokens after a cache of length P."""
        return self.prefix_length

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                      padding_mask: bool = True) -> torch.Tensor:
        """input_ids, attention_mask: [B, T] (right padded) -> last hidden states [B, T, D]. padding_mask=False:
        causal attention only; real positions are unchanged, padded positions are not what the mask gives."""
        embeds = self.backbone.embed_tokens(input_ids)  # [B, T, D], scaled by sqrt(d_model)
        prompt = self.input_prompt_length
        if prompt:
            # Soft prompt: P constant embeddings in front, through every layer; causal, so they see only each other.
            table = self.input_prompt.to(embeds.dtype).unsqueeze(0).expand(embeds.shape[0], -1, -1)  # [B, P_in, D]
            embeds = torch.cat([table, embeds], dim=1)  # [B, P_in+T, D]
            attention_mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], prompt), attention_mask], 1)
        seq_len = embeds.shape[1]
        offset = self.position_offset
        # Real tokens sit after the prefix: positions P..P+T-1 (XGLM ignores padding when numbering).
        positions = torch.arange(offset, offset + seq_len, device=input_ids.device)  # [T]
        table = self.backbone.embed_positions
        pos_emb = table.weights.index_select(0, positions + table.offset)  # [T, D]
        hidden = embeds + pos_emb.unsqueeze(0).to(self.head.weight.dtype)
        hidden = nn.functional.dropout(hidden, p=float(self.backbone.dropout), training=self.training)
        mask = attention_bias(attention_mask, self.prefix_length) if padding_mask else None  # [B, 1, T, P+T]
        for layer in self.backbone.layers:
            hidden = layer(hidden, attention_mask=mask)
        hidden = self.backbone.layer_norm(hidden)  # [B, P_in+T, D]
        return hidden[:, prompt:] if prompt else hidden  # [B, T, D]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_states(input_ids, attention_mask, padding_mask=self.attention_path == "masked")  # [B, T, D]
        last = (attention_mask.sum(dim=1) - 1).clamp(min=0)  # [B]: index of the last real token
        pooled = hidden.gather(1, last.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])).squeeze(1)  # [B, D]
        return self.head(self.dropout(pooled))  # [B, num_labels]


def attention_bias(attention_mask: torch.Tensor, prefix_length: int) -> torch.Tensor:
    """[B, T] 0/1 padding mask -> bool [B, 1, T, P+T]: causal over real keys, padding hidden, prefix always visible."""
    seq_len = attention_mask.shape[1]
    idx = torch.arange(seq_len, device=attention_mask.device)
    causal = idx.view(1, -1) <= idx.view(-1, 1)  # [T, T]: key j visible to query i when j <= i
    mask = causal.view(1, 1, seq_len, seq_len) & attention_mask.bool().view(-1, 1, 1, seq_len)  # [B, 1, T, T]
    if prefix_length:
        visible = torch.ones(mask.shape[0], 1, seq_len, prefix_length, dtype=torch.bool, device=mask.device)
        mask = torch.cat([visible, mask], dim=-1)  # [B, 1, T, P+T]
    return mask


def weights_fingerprint(module: nn.Module) -> str:
    """A cheap identity of a set of weights: every tensor's name, shape and first values, hashed.

    Tells a prefix artifact which backbone it was trained on; reading all 564M values would take seconds.
    """
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().flatten()[:64].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def weight_tensors(module: nn.Module) -> list[torch.Tensor]:
    """The learned tensors of a model: parameters, shared ones once (XGLM ties embedding and LM head), plus a
    folded prefix or soft prompt (persistent prefix_k/prefix_v/input_prompt buffers): learned, frozen for inference."""
    seen: dict[int, torch.Tensor] = {}
    for p in module.parameters():
        seen.setdefault(id(p), p)
    for name, buffer in module.named_buffers():
        if name.rsplit(".", 1)[-1] in ("prefix_k", "prefix_v", "input_prompt"):
            seen.setdefault(id(buffer), buffer)
    return list(seen.values())


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) over weight_tensors."""
    tensors = weight_tensors(module)
    return sum(t.numel() for t in tensors), sum(t.numel() for t in tensors if t.requires_grad)
