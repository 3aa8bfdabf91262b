"""Eager PyTorch: the model as it is, on cpu or cuda, in fp32, fp16 or bf16; optionally its linears on oneDNN."""

from __future__ import annotations

from pathlib import Path

from bench.backends.base import Runner, Target, TorchRunner, placed_copy
from bench.config import BackendOptions
from bench.measure.gemm_libraries import torch_library


def prepare(model, target: Target, example, options: BackendOptions, workdir: Path) -> Runner:
    module = placed_copy(model, target)
    linears = options.eager.linears
    library = torch_library(target.device)  # torch's default path, named by its BLAS as calibration names it
    replaced = 0
    if linears == "onednn":
        from bench.backends.onednn_linear import check_onednn, onednn_linears

        check_onednn(target)
        replaced = onednn_linears(module)
        library = "onednn"
    runner = TorchRunner("eager", module, target)
    runner.info.update(eager_linears=linears, eager_linears_replaced=replaced, linear_library=library)
    return runner
