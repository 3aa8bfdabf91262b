"""A variant's artifact for one task and seed: loaded from the cache when its recipe was built before, else built
by the method's registered builder and saved. The recipe is everything that determines the weights, including
the base a variant is trained on (its artifact key and weights fingerprint): a rebuilt base means a new recipe."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from bench.variants import artifacts
from bench.variants.bases import base_identity
from bench.variants.context import BuildContext
from bench.variants.registry import builder
from bench.config import SweepConfig, TrainConfig, VariantBase
from bench.data.examples import TaskData
from bench.model.source import ModelSource


@dataclass(frozen=True)
class BuildInputs:
    """What every variant of a sweep is built from."""

    source: ModelSource
    backbone_seed: int  # random-weight backbones: the same "pretrained" model for every variant and seed
    max_length: int
    tokenizer: Any
    tokenizer_note: str
    cache_dir: Path
    device: str
    trust_remote_code: bool = False


def recipe(inputs: BuildInputs, variant: VariantBase, train: TrainConfig, data: TaskData, train_ids: list,
           seed: int, base: artifacts.Artifact | None = None) -> dict[str, Any]:
    train_hash = hashlib.sha256(json.dumps([train_ids, data.train.label]).encode()).hexdigest()[:16]
    wanted = {
        "format": 1, "variant": variant.name, "method": variant.method,
        "options": variant.recipe_options(), "model": str(inputs.source),
        "task": data.task.name, "seed": seed, "backbone_seed": inputs.backbone_seed, "train": train.model_dump(),
        "max_length": inputs.max_length, "train_data": train_hash, "tokenizer": inputs.tokenizer_note,
    }
    if base is not None:
        wanted["base"] = {k: v for k, v in base_identity(base).items() if k in ("variant", "key", "fingerprint")}
    return wanted


@dataclass(frozen=True)
class BaseStep:
    """One variant another is built on: its config, its training config and the seed whose artifact is used."""

    variant: VariantBase
    train: TrainConfig
    seed: int


def base_chain(cfg: SweepConfig, variant: VariantBase, seed: int) -> tuple[BaseStep, ...]:
    """What a variant's seed is built on, nearest base first (empty without a base). A base's artifact for the
    same seed when the base has that seed, else for its first seed."""
    chain = []
    while variant.built_on is not None:
        variant = next(v for v in cfg.variants if v.name == variant.built_on)
        seeds = variant.seeds_or(cfg.seed)
        seed = seed if seed in seeds else seeds[0]
        chain.append(BaseStep(variant, cfg.train_for(variant), seed))
    return tuple(chain)


def base_artifact(inputs: BuildInputs, chain: tuple[BaseStep, ...], data: TaskData, train_ids: list,
                  console: Console) -> artifacts.Artifact | None:
    """The artifact a variant is trained on (None without a base). The sweep builds bases first
    (bench.config.bases.build_order), so this is a cache hit; otherwise the base is built now."""
    if not chain:
        return None
    step, parent = chain[0], base_artifact(inputs, chain[1:], data, train_ids, console)
    cached = artifacts.lookup(inputs.cache_dir, recipe(inputs, step.variant, step.train, data, train_ids, step.seed, parent))
    if cached is not None:
        return cached
    return artifact_for(inputs, step.variant, step.train, data, train_ids, step.seed, console, base=parent)[0]


def artifact_for(inputs: BuildInputs, variant: VariantBase, train: TrainConfig, data: TaskData, train_ids: list,
                 seed: int, console: Console, base: artifacts.Artifact | None = None) -> tuple[artifacts.Artifact, bool]:
    """(artifact, whether it was built now); base: the artifact the variant is trained on (base_artifact)."""
    wanted = recipe(inputs, variant, train, data, train_ids, seed, base)
    cached = artifacts.lookup(inputs.cache_dir, wanted, note=lambda text: console.print(f"  [yellow]note[/] {text}"))
    if cached is not None:
        console.print(f"  {variant.name}: cached artifact {cached.path}" + (f" (on {base.path.name})" if base else ""))
        return cached, False
    ctx = BuildContext(
        variant=variant, task=data.task, source=inputs.source, train=train, seed=seed,
        backbone_seed=inputs.backbone_seed, train_ids=train_ids, train_labels=data.train.label,
        pad_id=inputs.tokenizer.pad_token_id, device=torch.device(inputs.device), console=console,
        trust_remote_code=inputs.trust_remote_code, base=base,
    )
    built = builder(variant.method)(ctx)
    result = built.train
    meta = {
        "architecture": built.architecture,
        "params_trainable": built.extra.pop("params_trainable"),
        "extra": built.extra,
        "train": None if result is None else {
            "seconds": result.seconds, "steps": result.steps, "final_loss": result.final_loss,
            "losses": result.losses, "split": data.train_split, "rows": len(train_ids)},
    }
    artifact = artifacts.save(inputs.cache_dir, wanted, built.model, inputs.tokenizer, meta, built.state_dict)
    if result is None:
        console.print(f"  {variant.name}: nothing trained; saved {artifact.path}")
    else:
        loss = "-" if result.final_loss is None else f"{result.final_loss:.4f}"
        console.print(f"  {variant.name} (seed {seed}): {result.steps} steps in {result.seconds:.1f} s, "
                      f"final loss {loss}; saved {artifact.path}")
    return artifact, True
