"""What a method's builder receives (BuildContext) and returns (BuiltVariant): plain typed values both sides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console

from bench.variants.artifacts import Artifact
from bench.variants.train import TrainResult
from bench.config import TrainConfig, VariantBase
from bench.data.tasks import TaskSpec
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource


@dataclass
class BuildContext:
    variant: VariantBase
    task: TaskSpec
    source: ModelSource
    train: TrainConfig
    seed: int  # training: head and prefix init, data order, dropout
    backbone_seed: int  # random-weight backbones: the same "pretrained" model for every variant and seed
    train_ids: list[list[int]]
    train_labels: list[int]
    pad_id: int
    device: torch.device
    console: Console | None = None
    trust_remote_code: bool = False
    base: Artifact | None = None  # the variant's `base`: the artifact it is built on, else the pretrained backbone


@dataclass
class BuiltVariant:
    model: XGLMClassifier
    architecture: dict[str, Any]
    train: TrainResult | None  # None: nothing was trained (e.g. a reused prefix)
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific record fields
    state_dict: dict[str, torch.Tensor] | None = None  # what the artifact stores; None: the whole model
