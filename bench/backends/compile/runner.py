"""torch.compile: compile time is the first call, measured and recorded apart from steady-state latency.

A compiled cell must never run eager under the label "compile". Dynamo recompiles for every new input shape when
`dynamic=False` (and for some shapes under `dynamic=None`); past its recompile limit (8 by default) it gives up on
the frame and runs it eagerly, silently. A cell meets up to ~16 evaluation shapes plus its latency shapes, so:
- the limit is raised deliberately to RECOMPILE_LIMIT for this module (recorded as `compile_recompile_limit`);
- beyond it dynamo fails hard (`fail_on_recompile_limit_hit`): the cell's pass fails with the reason;
- graphs, recompiles, graph breaks and frames that ran eagerly are counted from dynamo's own counters
  (torch._dynamo.utils.counters) per cell (`runtime_info`), and a frame that fell back to eager fails the
  pass that reads its output.
CUDA-graph modes ("reduce-overhead", "max-autotune") warm up, record, then replay each new shape: the runner asks
for 3 untimed calls per shape, so no capture lands in a timed pass.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.backends.base import Runner, Target, TorchRunner, placed_copy
from bench.config import BackendOptions
from bench.measure.timing import stopwatch

RECOMPILE_LIMIT = 64  # distinct shapes one cell may compile; dynamo's default of 8 is below a sweep's shapes
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")
CUDAGRAPH_WARMUP = 3  # cudagraph trees: 1st call warms up, 2nd records, 3rd replays


def prepare(model, target: Target, example, options: BackendOptions, workdir: Path) -> Runner:
    opts = options.compile
    module = placed_copy(model, target)
    compiled, limit_note = compile_module(module, mode=opts.mode, dynamic=opts.dynamic, fullgraph=opts.fullgraph)
    runner = CompiledRunner(compiled, target, cudagraphs=target.is_cuda and opts.mode in CUDAGRAPH_MODES,
                            freezing=opts.freezing)
    inputs = runner.inputs(*example)
    # The first call traces and generates code; later shapes recompile during the cell's own warm-up.
    with stopwatch(runner.synchronize) as first_call:
        runner(inputs)
    runner.build_seconds["compile_s"] = first_call.seconds
    runner.info.update(compile_mode=opts.mode, compile_dynamic=opts.dynamic, compile_fullgraph=opts.fullgraph,
                       compile_recompile_limit=RECOMPILE_LIMIT, compile_recompile_limit_note=limit_note,
                       compile_cudagraphs=runner.cudagraphs, compile_freezing=opts.freezing,
                       linear_library=compiled_linear_library(target, opts.freezing, opts.dynamic))
    return runner


def compiled_linear_library(target: Target, freezing: bool, dynamic: bool | None) -> str:
    """The library inductor hands CPU linears to: torch's BLAS (extern mm) without freezing; with it, MKL's packed
    GEMM for fp32 where torch has MKL and the batch is static, else oneDNN (inductor's mkldnn_fusion rules)."""
    import torch

    from bench.measure.gemm_libraries import torch_library

    if target.is_cuda or not freezing:
        return torch_library(target.device)
    return "mkl" if target.dtype == "fp32" and torch._C.has_mkl and dynamic is not True else "onednn"


def compile_module(module: torch.nn.Module, *, mode: str = "default", dynamic: bool | None = None,
                   fullgraph: bool = False, backend: str = "inductor") -> tuple[Any, str]:
    """torch.compile with the recompile limit raised to RECOMPILE_LIMIT and a hard failure beyond it."""
    import torch._dynamo

    torch._dynamo.config.fail_on_recompile_limit_hit = True  # never fall back to eager silently
    note = f"raised from dynamo's {torch._dynamo.config.recompile_limit} so that every shape of a cell compiles; beyond it the cell fails"
    kwargs: dict[str, Any] = {"mode": None if backend != "inductor" else mode, "dynamic": dynamic,
                              "fullgraph": fullgraph, "backend": backend}
    if "recompile_limit" in inspect.signature(torch.compile).parameters:  # torch >= 2.13: per module
        kwargs["recompile_limit"] = RECOMPILE_LIMIT
    else:  # older torch: the process-wide setting (one cell per process)
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(module, **kwargs), note


@dataclass(frozen=True)
class DynamoCounts:
    """Dynamo's process-wide counters at one moment; the difference of two is what happened in between."""

    graphs: int
    frames: int
    frames_ok: int
    graph_breaks: int

    @classmethod
    def now(cls) -> DynamoCounts:
        from torch._dynamo.utils import counters

        return cls(graphs=int(counters["stats"]["unique_graphs"]), frames=int(counters["frames"]["total"]),
                   frames_ok=int(counters["frames"]["ok"]), graph_breaks=int(sum(counters["graph_break"].values())))

    def since(self, before: DynamoCounts) -> dict[str, int]:
        graphs = self.graphs - before.graphs
        return {
            "compile_graphs": graphs,
            "compile_recompiles": max(0, graphs - 1),
            "compile_graph_breaks": self.graph_breaks - before.graph_breaks,
            # frames dynamo gave up on (recompile limit, unsupported code): they ran eagerly
            "compile_eager_frames": (self.frames - before.frames) - (self.frames_ok - before.frames_ok),
        }


class CompiledRunner(TorchRunner):
    """A compiled module that counts its recompiles and refuses to hand out results computed eagerly."""

    def __init__(self, module: Any, target: Target, *, cudagraphs: bool = False, freezing: bool = False) -> None:
        super().__init__("compile", module, target)
        self.cudagraphs, self.freezing = cudagraphs, freezing
        self.warmup_per_shape = CUDAGRAPH_WARMUP if cudagraphs else 1
        self._start = DynamoCounts.now()

    def __call__(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if self.cudagraphs:
            # A new step for cudagraph trees: the previous output may be overwritten (logits() copied it already).
            torch.compiler.cudagraph_mark_step_begin()
        if self.freezing:  # inductor reads its config at each (re)compile; patched per call, not process-wide
            import torch._inductor.config as inductor_config

            with inductor_config.patch(freezing=True):
                return super().__call__(inputs)
        return super().__call__(inputs)

    def runtime_info(self) -> dict[str, Any]:
        return DynamoCounts.now().since(self._start)

    def logits(self, output: torch.Tensor) -> np.ndarray:
        self.verify()
        return super().logits(output)

    def verify(self) -> None:
        """Raise when dynamo ran a frame of this cell eagerly: its numbers would not be compile's."""
        counts = self.runtime_info()
        if counts["compile_eager_frames"]:
            raise RuntimeError(f"torch.compile fell back to eager for {counts['compile_eager_frames']} frame(s) after "
                               f"{counts['compile_graphs']} graph(s); the cell is not a compiled cell")
