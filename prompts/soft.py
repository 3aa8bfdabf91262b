"""Prompt tuning at the input only (Lester et al., 2021) as a variant method: `soft_prompt`.

P trainable embeddings [P, d_model] go in front of the token embeddings; the backbone is frozen, the prompt and
the head train. This is PEFT's PromptTuningConfig on XGLM, checked equal in tests/test_peft.py: virtual tokens
take positions 0..P-1 and the real tokens P..P+T-1 (padding ignored), attention is causal over the prompt too,
and the prompt table is used as it is, while real token embeddings are scaled by sqrt(d_model).

Inference (`soft_prompt_inference`):
- "input" (default): the trained table is a constant in front of every sequence and runs through every layer,
  as PEFT and serving engines (vLLM) execute a soft prompt: P more tokens through every linear, attention over
  P + T. Its latency cost is measured, not assumed.
- "kv": the prompt sees only itself (it comes first, attention is causal), so its keys and values in each layer
  do not depend on the input: run it once through the frozen model and keep them in the attention modules'
  prefix slots. The same function (to float rounding), at exactly the inference cost of a P-tuning v2 prefix
  of the same P: a caching optimisation, which makes input-only vs layer-wise an accuracy-only comparison.

The artifact stores only the table and the head, plus what they were trained on (bench.variants.bases); the
folding, if any, happens when it is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from bench.variants.bases import base_fields, frozen_model, load_frozen
from bench.variants.context import BuildContext, BuiltVariant
from bench.variants.train import train_classifier
from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier, attention_bias

WHAT = "soft prompt artifact"
TABLE = "soft_prompt"  # the table's name in the artifact
FIRST_REGULAR_TOKEN = 4  # XGLM's ids 0-3 are <s>, <pad>, </s>, <unk>


class SoftPrompted(nn.Module):
    """Training-time wrapper: the trainable table goes in front of every batch, graph kept."""

    def __init__(self, model: XGLMClassifier, prompt: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.prompt = nn.Parameter(prompt)  # [P, d_model]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.model.set_input_prompt(self.prompt, persistent=False)
        return self.model(input_ids, attention_mask)


def initial_prompt(model: XGLMClassifier, length: int, init: str, seed: int) -> torch.Tensor:
    """[P, d_model]: "vocab" takes the (scaled) embeddings of P tokens sampled from the vocabulary, which is what
    the real tokens look like to the first layer (Lester et al.'s best initialisation, PEFT's SAMPLE_VOCAB);
    "random" is N(0, 1), PEFT's default."""
    g = torch.Generator().manual_seed(seed)
    if init == "random":
        return torch.randn(length, model.config.d_model, generator=g)
    ids = torch.randint(FIRST_REGULAR_TOKEN, model.config.vocab_size, (length,), generator=g)
    with torch.no_grad():
        return model.backbone.embed_tokens(ids.to(model.head.weight.device)).detach().clone().cpu()  # [P, d]


def build(ctx: BuildContext) -> BuiltVariant:
    v = ctx.variant
    mode, init = v.soft_prompt_inference or "input", v.soft_prompt_init or "vocab"
    model, identity = frozen_model(ctx)
    wrapped = SoftPrompted(model, initial_prompt(model, v.prompt_length, init, ctx.seed))
    trained = [wrapped.prompt, *model.head.parameters()]
    result = train_classifier(
        wrapped, trained, ctx.train_ids, ctx.train_labels, ctx.train, pad_id=ctx.pad_id, seed=ctx.seed,
        device=ctx.device, console=ctx.console, description=f"{v.name} / {ctx.task.name} / seed {ctx.seed}",
    )
    model.cpu()
    table = wrapped.prompt.detach().cpu().clone()  # [P, d]
    apply_prompt(model, table, mode)
    state = {TABLE: table, **{f"head.{k}": t for k, t in model.head.state_dict().items()}}
    trainable = sum(p.numel() for p in trained)
    extra = {"prompt_length": v.prompt_length, "soft_prompt_inference": mode, "soft_prompt_init": init,
             **base_fields(ctx), "params_trainable": trainable, "params_prompt": table.numel(),
             "params_total_training": sum(p.numel() for p in model.backbone.parameters()) + trainable}
    if mode == "kv":
        extra["params_prefix"] = sum(2 * a.prefix_k.numel() for a in model.attentions)  # what inference holds
    return BuiltVariant(
        model=model, train=result, state_dict=state, extra=extra,
        architecture={"kind": "soft_prompt", **identity, "prompt_length": v.prompt_length, "inference": mode},
    )


def load(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    """Rebuild the backbone or base the prompt was trained on (checked), then put the prompt in front or fold it."""
    model = load_frozen(architecture, weights, WHAT)
    state = load_file(str(weights))
    table = state.get(TABLE)
    expected = (architecture["prompt_length"], model.config.d_model)
    if table is None or tuple(table.shape) != expected:
        raise BenchError(f"{WHAT} '{weights.parent}' holds no prompt table of shape {list(expected)}")
    apply_prompt(model.eval(), table, architecture["inference"])
    model.head.load_state_dict({k.removeprefix("head."): t for k, t in state.items() if k.startswith("head.")})
    return model


def apply_prompt(model: XGLMClassifier, table: torch.Tensor, mode: str) -> None:
    """The trained table as inference runs it: a constant input prompt, or folded into per-layer keys and values."""
    if mode == "input":
        model.set_input_prompt(table)
    elif mode == "kv":
        with torch.no_grad():
            fold_to_prefix(model, table)
    else:
        raise ValueError(f"unknown soft prompt inference '{mode}'; known: input, kv")


def fold_to_prefix(model: XGLMClassifier, table: torch.Tensor, *, persistent: bool = True) -> None:
    """Run the prompt alone through the model (positions 0..P-1, causal) and keep, per layer, the keys and values
    its attention computes: [1, heads_l, P, head_dim], as many heads as the layer has. Real tokens are then
    numbered from P (the prefix slot's position offset), exactly where they sit behind an input prompt.

    persistent=False keeps the graph, so gradients reach `table` (equal to training through the input)."""
    backbone = model.backbone
    length = table.shape[0]
    for attn in model.attentions:
        attn.set_prefix(None, None)  # the prompt's own pass must not see an old prefix
    model.set_input_prompt(None)
    positions = backbone.embed_positions
    hidden = table.unsqueeze(0) + positions.weights[torch.arange(length) + positions.offset].to(table.dtype)  # [1, P, d]
    hidden = nn.functional.dropout(hidden, p=float(backbone.dropout), training=model.training)
    mask = attention_bias(torch.ones(1, length, dtype=torch.long), 0)  # [1, 1, P, P], causal
    kv = []
    for layer in backbone.layers:
        attn = layer.self_attn
        normed = layer.self_attn_layer_norm(hidden)  # what the layer's k_proj and v_proj see (pre-LayerNorm)
        shape = (1, length, attn.num_heads, attn.head_dim)
        kv.append((attn.k_proj(normed).view(shape).transpose(1, 2), attn.v_proj(normed).view(shape).transpose(1, 2)))
        hidden = layer(hidden, attention_mask=mask)  # [1, P, d]
    for attn, (key, value) in zip(model.attentions, kv):
        attn.set_prefix(key, value, persistent=persistent)
