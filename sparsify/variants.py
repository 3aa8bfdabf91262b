"""Sparse fine-tuning as variant methods: `unstructured`, `semi24` (2:4) and `structured`, plus the loader of
structured artifacts. Score, then mask or slice, then fine-tune with what was removed kept removed.

- unstructured / semi24: masked dense weights. One-shot: score, mask, fine-tune with the masks held (MaskKeeper).
  Gradual (unstructured only): masks recomputed on Zhu & Gupta's cubic schedule while fine-tuning. The artifact
  is an ordinary classifier whose pruned weights are exact zeros.
- structured: heads and FFN channels removed (structured.py), in one shot or over `structured_iterative_steps`
  rounds of prune-then-fine-tune. The artifact is the base config, the kept indices per layer and the state
  dict of the smaller model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError
from bench.model.classifier import XGLMClassifier, count_parameters
from bench.model.source import load_backbone
from bench.variants.train import TrainResult, planned_steps, train_classifier
from bench.variants.context import BuildContext, BuiltVariant
from sparsify import scores as scoring
from sparsify import structured
from sparsify.masks import MaskKeeper, semi24_masks, unstructured_masks
from sparsify.schedule import CubicSchedule
from sparsify.targets import sparse_targets


@dataclass(frozen=True)
class SparseOptions:
    """A variant's sparsity options with defaults resolved (the config leaves unset options as None)."""

    level: float
    scope: str = "layer"
    importance: str = "magnitude"
    schedule: str = "oneshot"
    gradual_fraction: float = 0.5
    iterative_steps: int = 1
    include: tuple[str, ...] = ()

    @classmethod
    def of(cls, variant) -> SparseOptions:
        level = 0.5 if variant.method == "semi24" else variant.sparsity
        option = lambda name: getattr(variant, name, None)  # noqa: E731 (each method has its own options)
        include = option("sparsity_include")
        given = {
            "scope": option("sparsity_scope"), "importance": option("importance"), "schedule": option("schedule"),
            "gradual_fraction": option("gradual_fraction"), "iterative_steps": option("structured_iterative_steps"),
            "include": tuple(include) if include is not None else None,
        }
        return cls(level=level, **{k: v for k, v in given.items() if v is not None})

    def record(self, method: str) -> dict[str, Any]:
        fields = {"sparsity": self.level, "importance": self.importance}
        if method == "structured":
            return fields | {"sparsity_scope": self.scope, "structured_iterative_steps": self.iterative_steps}
        fields |= {"sparsity_pattern": "2:4" if method == "semi24" else "unstructured",
                   "sparsity_include": list(self.include), "schedule": self.schedule}
        if method == "unstructured":
            fields["sparsity_scope"] = self.scope
        if self.schedule == "gradual":
            fields["gradual_fraction"] = self.gradual_fraction
        return fields


def check(variant, config) -> None:
    """What can be refused from the backbone's config alone, before any run directory exists."""
    opts = SparseOptions.of(variant)
    if variant.method == "structured":
        structured.require_torch_pruning()
        structured.check_level(config, opts.level, opts.scope)
    elif variant.method == "semi24":
        dims = {"decoder linears (d_model)": config.d_model, "fc2 (ffn_dim)": config.ffn_dim}
        if opts.include:
            dims["embedding and head (d_model)"] = config.d_model
        bad = {what: dim for what, dim in dims.items() if dim % 4}
        if bad:
            what, dim = next(iter(bad.items()))
            raise BenchError(f"variant '{variant.name}': 2:4 sparsity needs input dimensions that are multiples of 4; "
                             f"the {what} input is {dim}")


# ------------------------------------------------------------------------------------------ masked (dense zeros)


def build_unstructured(ctx: BuildContext) -> BuiltVariant:
    return _build_masked(ctx, "unstructured")


def build_semi24(ctx: BuildContext) -> BuiltVariant:
    return _build_masked(ctx, "semi24")


def _build_masked(ctx: BuildContext, method: str) -> BuiltVariant:
    opts = SparseOptions.of(ctx.variant)
    model = _classifier(ctx).to(ctx.device)
    keeper = MaskKeeper(sparse_targets(model, opts.include))
    total = planned_steps(ctx.train, len(ctx.train_ids))
    after_step = None
    if opts.schedule == "gradual":
        after_step = GradualPruner(keeper, CubicSchedule(opts.level, total, opts.gradual_fraction), opts)
    else:
        keeper.set(masks_for(method, _scores(ctx, model, keeper.params, opts.importance), opts))
    with keeper.attached():
        result = train_classifier(
            model, model.parameters(), ctx.train_ids, ctx.train_labels, ctx.train,
            pad_id=ctx.pad_id, seed=ctx.seed, device=ctx.device, console=ctx.console, after_step=after_step,
            description=f"{ctx.variant.name} / {ctx.task.name} / seed {ctx.seed}",
        )
    if opts.schedule == "gradual" and not after_step.reached:  # fewer steps than the ramp (e.g. steps = 0)
        keeper.set(masks_for(method, _scores(ctx, model, keeper.params, opts.importance), opts))
    model.cpu()
    keeper.apply()
    from bench.variants.dense import classifier_architecture

    _, trainable = count_parameters(model)
    return BuiltVariant(
        model=model, architecture=classifier_architecture(model), train=result,
        extra={**opts.record(method), "prompt_length": 0, "params_trainable": trainable},
    )


def masks_for(method: str, element_scores: dict[str, torch.Tensor], opts: SparseOptions, level: float | None = None):
    if method == "semi24":
        return semi24_masks(element_scores)
    return unstructured_masks(element_scores, opts.level if level is None else level, opts.scope)


class GradualPruner:
    """after_step hook: on the schedule's update steps, re-mask at the scheduled level. Taylor scores are summed
    from the gradients of the steps since the last update (the ones the optimiser just used)."""

    def __init__(self, keeper: MaskKeeper, schedule: CubicSchedule, opts: SparseOptions) -> None:
        self.keeper, self.schedule, self.opts = keeper, schedule, opts
        self.updates = set(schedule.update_steps)
        self.reached = False
        self.taylor: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def __call__(self, step: int) -> None:
        params = self.keeper.params
        if self.opts.importance == "taylor":
            if self.taylor is None:
                self.taylor = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
            for name, p in params.items():
                if p.grad is not None:
                    self.taylor[name] += (p * p.grad).abs().float()
        if step not in self.updates:
            return
        element = self.taylor if self.taylor is not None else scoring.magnitude(params)
        self.keeper.set(unstructured_masks(element, self.schedule.level(step), self.opts.scope))
        self.taylor = None
        self.reached = step >= self.schedule.ramp_steps


# -------------------------------------------------------------------------------------------------- structured


def build_structured(ctx: BuildContext) -> BuiltVariant:
    opts = SparseOptions.of(ctx.variant)
    model = _classifier(ctx).to(ctx.device)
    structured.check_level(model.config, opts.level, opts.scope)
    kept = structured.KeptUnits.full(model.config)
    total = planned_steps(ctx.train, len(ctx.train_ids))
    rounds = opts.iterative_steps
    chunks = [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]
    results = []
    for r in range(1, rounds + 1):
        element = _scores(ctx, model, structured.scored_params(model), opts.importance, round_=r)
        kept = structured.prune_to(model, kept, opts.level * r / rounds, opts.scope, element)
        del element
        results.append(train_classifier(
            model, model.parameters(), ctx.train_ids, ctx.train_labels, ctx.train.model_copy(update={"steps": chunks[r - 1]}),
            pad_id=ctx.pad_id, seed=ctx.seed + r - 1, device=ctx.device, console=ctx.console,
            description=f"{ctx.variant.name} / {ctx.task.name} / seed {ctx.seed}"
                        + (f" / round {r} of {rounds}" if rounds > 1 else ""),
        ))
    model.cpu()
    _, trainable = count_parameters(model)
    return BuiltVariant(
        model=model,
        architecture={"kind": "structured", "backbone_config": model.config.to_dict(),
                      "num_labels": model.head.out_features, **kept.to_json()},
        train=_merged(results),
        extra={**opts.record("structured"), "prompt_length": 0, "params_trainable": trainable},
    )


def load_structured(weights: Path, architecture: dict[str, Any]) -> XGLMClassifier:
    """Rebuild the pruned tree from the base config and kept indices, then load the weights (safetensors)."""
    from safetensors.torch import load_model

    model = structured.rebuild(architecture["backbone_config"], architecture["num_labels"],
                               structured.KeptUnits.from_json(architecture))
    load_model(model, str(weights), strict=True)
    return model.eval()


# ----------------------------------------------------------------------------------------------------- shared


def _classifier(ctx: BuildContext) -> XGLMClassifier:
    backbone = load_backbone(ctx.source, seed=ctx.backbone_seed, trust_remote_code=ctx.trust_remote_code)
    torch.manual_seed(ctx.seed)
    return XGLMClassifier(backbone, ctx.task.num_labels)


def _scores(ctx: BuildContext, model, params, importance: str, round_: int = 0) -> dict[str, torch.Tensor]:
    batches = None
    if importance == "taylor":
        batches = scoring.training_batches(ctx.train_ids, ctx.train_labels, batch_size=ctx.train.batch_size,
                                           pad_id=ctx.pad_id, seed=ctx.seed + round_)
    return scoring.score(importance, model, params, batches)


def _merged(results: list[TrainResult]) -> TrainResult:
    merged = TrainResult(steps=0, seconds=0.0, examples_seen=0)
    for result in results:
        merged.losses += [(merged.steps + step, loss) for step, loss in result.losses]
        merged.steps += result.steps
        merged.seconds += result.seconds
        merged.examples_seen += result.examples_seen
    return merged

