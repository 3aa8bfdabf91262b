"""The runner interface shared by all backends, and the torch-module runner that eager and compile share."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.model.dtypes import TORCH_DTYPES



class SkipCell(Exception):
    """This backend cannot serve this target here (the message says why); the cell is recorded as skipped."""


@dataclass(frozen=True)
class Target:
    device: str  # "cpu" | "cuda"
    dtype: str  # "fp32" | "fp16" | "bf16"
    threads: int

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.dtype]


class Runner(ABC):
    """inputs() places a batch on the device once, outside any timing; __call__ runs one forward and leaves the
    output where the backend puts it; logits() brings it to the host as float32."""

    backend: str
    target: Target
    build_seconds: dict[str, float]  # e.g. {"compile_s": ...}, one-off costs kept apart from latency
    info: dict[str, Any]  # backend settings worth recording (mode, providers, threads)
    cuda_events: bool = False  # time with CUDA events (work queued on torch's stream) or the host clock

    @abstractmethod
    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any: ...

    @abstractmethod
    def __call__(self, inputs: Any) -> Any: ...

    @abstractmethod
    def logits(self, output: Any) -> np.ndarray: ...

    def synchronize(self) -> None:
        if self.target.device == "cuda":
            torch.cuda.synchronize()


class TorchRunner(Runner):
    """Runs a torch module (plain, or compiled) in inference mode."""

    def __init__(self, backend: str, module: torch.nn.Module, target: Target) -> None:
        self.backend, self.module, self.target = backend, module, target
        self.build_seconds, self.info = {}, {}
        self.cuda_events = target.device == "cuda"

    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.target.torch_device
        return input_ids.to(device), attention_mask.to(device)

    @torch.inference_mode()
    def __call__(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.module(*inputs)

    def logits(self, output: torch.Tensor) -> np.ndarray:
        return output.float().cpu().numpy()


def placed_copy(model: torch.nn.Module, target: Target) -> torch.nn.Module:
    """A copy of the model on the target device and dtype (the sweep's model stays untouched for the next cell)."""
    if target.device == "cuda" and not torch.cuda.is_available():
        raise SkipCell("CUDA is not available on this machine")
    return copy.deepcopy(model).to(device=target.torch_device, dtype=target.torch_dtype).eval()
