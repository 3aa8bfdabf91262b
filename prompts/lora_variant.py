"""LoRA as a variant method (`lora`): freeze the backbone (or a base variant's model), train low-rank adapters on
the chosen decoder linears and the head, then merge them for inference (`lora_merge`, default) or keep them.

The artifact stores only the adapters and the head, plus what they were trained on (bench.variants.bases):
loading rebuilds that model, refuses another, adds the adapters and merges them if the variant says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from prompts.lora import LoraOptions, add_lora, adapter_state, merge_lora
from bench.variants.bases import base_fields, frozen_model, load_frozen
from bench.variants.context import BuildContext, BuiltVariant
from bench.variants.train import train_classifier
from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier

WHAT = "LoRA artifact"


def build(ctx: BuildContext) -> BuiltVariant:
    v = ctx.variant
    opts = LoraOptions.of(v)
    model, identity = frozen_model(ctx)  # seeds torch with ctx.seed: the adapters' initialisation
    adapters = add_lora(model, opts)
    trained = [*adapters, *model.head.parameters()]
    result = train_classifier(
        model, trained, ctx.train_ids, ctx.train_labels, ctx.train, pad_id=ctx.pad_id, seed=ctx.seed,
        device=ctx.device, console=ctx.console, description=f"{v.name} / {ctx.task.name} / seed {ctx.seed}",
    )
    model.cpu()
    state = {**adapter_state(model), **{f"head.{k}": t for k, t in model.head.state_dict().items()}}
    trainable = sum(p.numel() for p in trained)
    frozen = sum(p.numel() for p in model.backbone.parameters() if not p.requires_grad)
    if opts.merge:
        merge_lora(model)
    return BuiltVariant(
        model=model, train=result, state_dict=state,
        architecture={"kind": "lora", **identity, "lora": opts.to_json()},
        extra={"lora_rank": opts.rank, "lora_alpha": opts.alpha, "lora_dropout": opts.dropout,
               "lora_targets": list(opts.targets), "lora_merged": opts.merge, "prompt_length": 0, **base_fields(ctx),
               "params_trainable": trainable, "params_adapter": sum(p.numel() for p in adapters),
               "params_total_training": frozen + trainable},
    )


def load(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    """The base or backbone trained on (checked), its adapters in place (every one present, of the right shape),
    merged if the variant merges."""
    model = load_frozen(architecture, weights, WHAT).eval()
    opts = LoraOptions.from_json(architecture["lora"])
    add_lora(model, opts)
    state = load_file(str(weights))
    wanted = adapter_state(model)
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise BenchError(f"{WHAT} '{weights.parent}' has no {missing[0]} (and {len(missing) - 1} more missing)")
    for key, target in wanted.items():
        if state[key].shape != target.shape:
            raise BenchError(f"{WHAT} '{weights.parent}': {key} is {list(state[key].shape)}, this model needs "
                             f"{list(target.shape)}")
        target.copy_(state[key])
    model.head.load_state_dict({k.removeprefix("head."): t for k, t in state.items() if k.startswith("head.")})
    if opts.merge:
        merge_lora(model)
    return model.eval()
