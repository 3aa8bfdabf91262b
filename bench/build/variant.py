"""A variant's artifact for one task and seed: loaded from the cache when its recipe was built before, else built
by the method's registered builder and saved. The recipe is everything that determines the weights."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from bench.build import artifacts
from bench.build.context import BuildContext
from bench.build.methods import builder
from bench.config import TrainConfig, VariantConfig
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


def recipe(inputs: BuildInputs, variant: VariantConfig, train: TrainConfig, data: TaskData, train_ids: list,
           seed: int) -> dict[str, Any]:
    train_hash = hashlib.sha256(json.dumps([train_ids, data.train.label]).encode()).hexdigest()[:16]
    return {
        "format": 1, "variant": variant.name, "method": variant.method,
        "options": variant.recipe_options(), "model": str(inputs.source),
        "task": data.task.name, "seed": seed, "backbone_seed": inputs.backbone_seed, "train": train.model_dump(),
        "max_length": inputs.max_length, "train_data": train_hash, "tokenizer": inputs.tokenizer_note,
    }


def artifact_for(inputs: BuildInputs, variant: VariantConfig, train: TrainConfig, data: TaskData, train_ids: list,
                 seed: int, console: Console) -> tuple[artifacts.Artifact, bool]:
    """(artifact, whether it was built now)."""
    wanted = recipe(inputs, variant, train, data, train_ids, seed)
    cached = artifacts.lookup(inputs.cache_dir, wanted, note=lambda text: console.print(f"  [yellow]note[/] {text}"))
    if cached is not None:
        console.print(f"  {variant.name}: cached artifact {cached.path}")
        return cached, False
    ctx = BuildContext(
        variant=variant, task=data.task, source=inputs.source, train=train, seed=seed,
        backbone_seed=inputs.backbone_seed, train_ids=train_ids, train_labels=data.train.label,
        pad_id=inputs.tokenizer.pad_token_id, device=torch.device(inputs.device), console=console,
        trust_remote_code=inputs.trust_remote_code,
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
