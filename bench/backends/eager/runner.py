"""Eager PyTorch: the model as it is, on cpu or cuda, in fp32, fp16 or bf16."""

from __future__ import annotations

from pathlib import Path

from bench.backends.base import Runner, Target, TorchRunner, placed_copy
from bench.config import BackendOptions


def prepare(model, target: Target, example, options: BackendOptions, workdir: Path) -> Runner:
    return TorchRunner("eager", placed_copy(model, target), target)
