"""torch.compile: compile time is the first call, measured and recorded apart from steady-state latency."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.backends.base import Runner, Target, TorchRunner, placed_copy
from bench.config import BackendOptions
from bench.measure.timing import stopwatch


def prepare(model, target: Target, example, options: BackendOptions, workdir: Path) -> Runner:
    opts = options.compile
    compiled = torch.compile(placed_copy(model, target), mode=opts.mode, dynamic=opts.dynamic, fullgraph=opts.fullgraph)
    runner = TorchRunner("compile", compiled, target)
    inputs = runner.inputs(*example)
    # The first call traces and generates code; later shapes may recompile during the cell's own warm-up.
    with stopwatch(runner.synchronize) as first_call:
        runner(inputs)
    runner.build_seconds["compile_s"] = first_call.seconds
    runner.info.update(compile_mode=opts.mode, compile_dynamic=opts.dynamic, compile_fullgraph=opts.fullgraph)
    return runner
