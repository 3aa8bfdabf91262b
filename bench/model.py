"""XGLM backbones (hub id, local directory or random preset) and the sequence classifier built on them.

transformers has no XGLM sequence-classification class; ours pools the hidden state of the last non-pad
token (right padding) into a linear head. The classifier runs the backbone's own submodules with its own
mask and positions, so that a folded prefix (positions P..P+T-1, keys always visible) and ONNX export with
dynamic shapes stay under our control; attention is bench.attention.SdpaAttention.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import XGLMConfig, XGLMModel

from bench.attention import SdpaAttention
from bench.errors import BenchError, did_you_mean
from bench.hub import check_reachable, one_line

# Named architectures with random weights (gpt-fast style presets). 564M is facebook/xglm-564M's shape.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=64, num_layers=2, attention_heads=4, ffn_dim=128, vocab_size=1024, max_position_embeddings=512),
    "small": dict(d_model=512, num_layers=4, attention_heads=8, ffn_dim=2048, vocab_size=8192, max_position_embeddings=2048),
    "564M": dict(d_model=1024, num_layers=24, attention_heads=16, ffn_dim=4096, vocab_size=256008, max_position_embeddings=2048),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """Where a backbone comes from: `random:<preset>`, a local directory, or a hub id."""

    kind: Literal["random", "local", "hub"]
    name: str

    @classmethod
    def parse(cls, spec: str) -> "ModelSource":
        if spec.startswith("random:"):
            preset = spec.removeprefix("random:")
            if preset not in PRESETS:
                raise BenchError(did_you_mean(preset, list(PRESETS), "model preset") + " (use random:<preset>)")
            return cls("random", preset)
        path = Path(spec).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise BenchError(f"model directory '{spec}' has no config.json; save one with save_pretrained()")
            return cls("local", str(path.resolve()))
        if _HUB_ID.match(spec) and not spec.startswith((".", "~")):
            return cls("hub", spec)
        raise BenchError(
            f"model '{spec}' is neither a directory nor a hub id (org/name) nor random:<preset> "
            f"(presets: {', '.join(PRESETS)})"
        )

    @property
    def random_weights(self) -> bool:
        return self.kind == "random"

    def __str__(self) -> str:
        return f"random:{self.name}" if self.kind == "random" else self.name


def preset_config(preset: str) -> XGLMConfig:
    return XGLMConfig(**PRESETS[preset])


def backbone_config(source: ModelSource, *, trust_remote_code: bool = False) -> XGLMConfig:
    """The backbone's config, checked to be XGLM; cheap, so preflight calls it before any run exists."""
    if source.kind == "random":
        return preset_config(source.name)
    with _loading(source) as offline:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source.name, trust_remote_code=trust_remote_code, local_files_only=offline)
    if config.model_type != "xglm":
        raise BenchError(f"model '{source.name}' is a {config.model_type} model, not XGLM")
    return config


def load_backbone(source: ModelSource, *, seed: int = 0, trust_remote_code: bool = False) -> XGLMModel:
    """An fp32 XGLMModel; random presets are initialised from `seed` so a recipe rebuilds identically."""
    config = backbone_config(source, trust_remote_code=trust_remote_code)
    if source.kind == "random":
        torch.manual_seed(seed)
        return XGLMModel(config).eval()
    with _loading(source) as offline:
        # XGLMModel takes the base weights out of an XGLMForCausalLM checkpoint ("model." prefix).
        return XGLMModel.from_pretrained(
            source.name, config=config, dtype=torch.float32, trust_remote_code=trust_remote_code,
            local_files_only=offline,
        ).eval()


@contextmanager
def _loading(source: ModelSource) -> Iterator[bool]:
    """Yields whether to stay offline (hub unreachable: the local cache only); load errors become one line."""
    why_offline = hub_unreachable() if source.kind == "hub" else None
    try:
        yield why_offline is not None
    except (OSError, ValueError) as exc:
        if source.kind == "local":
            raise BenchError(f"could not load model directory '{source.name}': {one_line(exc)}") from exc
        why = f"the hub is unreachable ({why_offline}) and it is not in the local cache" if why_offline else one_line(exc)
        raise BenchError(
            f"could not load model '{source.name}' from the hub: {why}; download it where the hub is reachable "
            "or pass a local directory"
        ) from exc


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached now, or None; offline, loading falls back to the local cache."""
    try:
        check_reachable()
    except BenchError as exc:
        return str(exc)
    return None


class XGLMClassifier(nn.Module):
    """XGLM backbone + linear head on the last non-pad token. forward(input_ids, attention_mask) -> logits."""

    def __init__(self, backbone: XGLMModel, num_labels: int) -> None:
        super().__init__()
        for layer in backbone.layers:
            if not isinstance(layer.self_attn, SdpaAttention):
                layer.self_attn = SdpaAttention.from_xglm(layer.self_attn)
        self.backbone = backbone
        self.dropout = nn.Dropout(backbone.config.dropout)
        self.head = nn.Linear(backbone.config.d_model, num_labels)

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
    def position_offset(self) -> int:
        """Real tokens are numbered after the prefix, as transformers numbers tokens after a cache of length P."""
        return self.prefix_length

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: [B, T] (right padded) -> last hidden states [B, T, D]."""
        seq_len = input_ids.shape[1]
        offset = self.position_offset
        # Real tokens sit after the prefix: positions P..P+T-1 (XGLM ignores padding when numbering).
        positions = torch.arange(offset, offset + seq_len, device=input_ids.device)  # [T]
        table = self.backbone.embed_positions
        pos_emb = table.weights.index_select(0, positions + table.offset)  # [T, D]
        hidden = self.backbone.embed_tokens(input_ids) + pos_emb.unsqueeze(0).to(self.head.weight.dtype)
        hidden = nn.functional.dropout(hidden, p=float(self.backbone.dropout), training=self.training)
        mask = attention_bias(attention_mask, self.prefix_length)  # [B, 1, T, P+T]
        for layer in self.backbone.layers:
            hidden = layer(hidden, attention_mask=mask)
        return self.backbone.layer_norm(hidden)  # [B, T, D]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_states(input_ids, attention_mask)  # [B, T, D]
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
    folded prefix (persistent prefix_k/prefix_v buffers): learned weights, frozen for inference."""
    seen: dict[int, torch.Tensor] = {}
    for p in module.parameters():
        seen.setdefault(id(p), p)
    for name, buffer in module.named_buffers():
        if name.rsplit(".", 1)[-1] in ("prefix_k", "prefix_v"):
            seen.setdefault(id(buffer), buffer)
    return list(seen.values())


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) over weight_tensors."""
    tensors = weight_tensors(module)
    return sum(t.numel() for t in tensors), sum(t.numel() for t in tensors if t.requires_grad)
