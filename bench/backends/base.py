"""The runner interface shared by all backends, and the torch-module runner that eager and compile share."""

from __future__ import annotations

import copy
import gc
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.model.dtypes import TORCH_DTYPES, apply_tf32_policy, tf32_unsupported


class SkipCell(Exception):
    """This backend cannot serve this target here (the message says why); the cell is recorded as skipped."""


@dataclass(frozen=True)
class Target:
    device: str  # "cpu" | "cuda" | "cuda:N"
    dtype: str  # "fp32" | "tf32" | "fp16" | "bf16"
    threads: int

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def cuda_index(self) -> int:
        """The CUDA runtime index of this target (CUDA_VISIBLE_DEVICES applied): N of cuda:N, else the current one."""
        device = self.torch_device
        return device.index if device.index is not None else torch.cuda.current_device()

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.dtype]


class Runner(ABC):
    """inputs() places a batch on the device once, outside any timing; __call__ runs one forward and leaves the
    output where the backend puts it; logits() brings it to the host as float32."""

    backend: str
    target: Target
    build_seconds: dict[str, float]  # e.g. {"compile_s": ...}, one-off costs kept apart from latency
    info: dict[str, Any]  # backend settings worth recording (mode, providers, threads, tf32)
    cuda_events: bool = False  # time with CUDA events (work queued on torch's stream) or the host clock
    # Whose allocator holds the runner's device memory: "torch" (its peak statistics see it) or "onnxruntime"
    # (ORT's own CUDA arena: only NVML sees it).
    allocator: str = "torch"
    # Untimed calls a new input shape needs before it runs in steady state (compile: 1 to trace; CUDA graphs: 3, to
    # warm up, record, then replay), so that no capture lands in a timed pass.
    warmup_per_shape: int = 1

    @abstractmethod
    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any: ...

    @abstractmethod
    def __call__(self, inputs: Any) -> Any: ...

    @abstractmethod
    def logits(self, output: Any) -> np.ndarray: ...

    def synchronize(self) -> None:
        if self.target.is_cuda:
            torch.cuda.synchronize(self.target.torch_device)

    def release_memory(self) -> None:
        """Give cached device memory back before a memory measurement, so the next peak is that shape's own."""
        gc.collect()
        if self.target.is_cuda:
            torch.cuda.empty_cache()

    def verify(self) -> None:
        """Raise when what ran is not what the label says (compile: a frame dynamo ran eagerly)."""

    def runtime_info(self) -> dict[str, Any]:
        """Record fields known only after the runner has run (compile: graphs, recompiles, fall-backs)."""
        return {}


class TorchRunner(Runner):
    """Runs a torch module (plain, or compiled) in inference mode, under the cell's TF32 policy."""

    def __init__(self, backend: str, module: torch.nn.Module, target: Target) -> None:
        self.backend, self.module, self.target = backend, module, target
        self.build_seconds = {}
        self.info = apply_tf32_policy(target.dtype, force=True)
        self.cuda_events = target.is_cuda

    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.target.torch_device
        return input_ids.to(device), attention_mask.to(device)

    @torch.inference_mode()
    def __call__(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        apply_tf32_policy(self.target.dtype)  # a flag check unless another cell in this process changed it
        return self.module(*inputs)

    def logits(self, output: torch.Tensor) -> np.ndarray:
        return output.float().cpu().numpy()


def check_target(target: Target) -> None:
    """SkipCell when this machine cannot serve the target at all (no CUDA, no such GPU, no TF32)."""
    if target.is_cuda:
        if not torch.cuda.is_available():
            raise SkipCell("CUDA is not available on this machine")
        index = target.torch_device.index
        if index is not None:
            if index >= torch.cuda.device_count():
                raise SkipCell(f"{target.device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
            torch.cuda.set_device(index)  # the current device of this cell's process: streams, events, stats
    reason = tf32_unsupported(target.dtype, target.device)
    if reason:
        raise SkipCell(reason)


def placed_copy(model: torch.nn.Module, target: Target) -> torch.nn.Module:
    """A copy of the model on the target device and dtype (the sweep's model stays untouched for the next cell)."""
    check_target(target)
    return copy.deepcopy(model).to(device=target.torch_device, dtype=target.torch_dtype).eval()
