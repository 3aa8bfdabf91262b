"""Does the harness time what an independent timer times? `python -m benchmarks.agreement`

On one model, shape, thread count and prepared runner, the harness's block timing (bench.measure.passes.time_block)
is compared with torch.utils.benchmark.Timer (its own loop and clock, blocked autorange). Both are cells of the
same interleaved rounds (bench.measure.rounds), so drift of a shared machine hits both alike and their ratio is
paired round by round. Also reported: the harness's own cost per iteration (its loop around a no-op), and a
masked-dense control (half of every decoder-layer linear set to zero by magnitude) measured in the same rounds as
dense, whose speedup must be 1.0 within its CI: dense kernels do not skip zeros.
"""

from __future__ import annotations

import argparse
import copy
import json
from typing import Any

import numpy as np
import torch

from bench.backends import Target, prepare
from bench.config import BackendOptions, MeasureConfig
from bench.data.evalset import Batch
from bench.measure.passes import time_block, warm_up
from bench.measure.rounds import Block, StopRule, paired_ratio, run_rounds
from bench.measure.stats import LatencyStats
from bench.measure.timing import time_iterations
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone

SHAPE = (0, 0)  # one input per cell here; the scheduler's shape key is only a label


def random_batch(batch_size: int, seq_len: int, vocab: int = 1000, seed: int = 0) -> Batch:
    """Timing depends on shapes only; full-length rows (no padding) keep every position busy."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (batch_size, seq_len), generator=g)
    return Batch(ids, torch.ones_like(ids), np.arange(batch_size))


class HarnessCell:
    """The harness's own block timing of a prepared runner."""

    def __init__(self, name: str, runner, batch: Batch, cfg: MeasureConfig) -> None:
        self.name, self.runner, self.cfg = name, runner, cfg
        self.inputs = runner.inputs(batch.input_ids, batch.attention_mask)
        warm_up(runner, self.inputs, cfg.warmup_iters)

    def block(self, shape, iters: int, min_time_s: float) -> Block:
        samples, _ = time_block(self.runner, self.inputs, self.cfg, iters, min_time_s)
        return Block(samples)


class TimerCell:
    """torch.utils.benchmark.Timer on the same runner: one blocked_autorange per round; its per-run means are the
    block's samples."""

    def __init__(self, name: str, runner, batch: Batch, threads: int, min_run_time: float) -> None:
        from torch.utils.benchmark import Timer

        self.name, self.min_run_time = name, min_run_time
        inputs = runner.inputs(batch.input_ids, batch.attention_mask)
        self.timer = Timer(stmt="runner(inputs); runner.synchronize()",
                           globals={"runner": runner, "inputs": inputs}, num_threads=threads)

    def block(self, shape, iters: int, min_time_s: float) -> Block:
        measurement = self.timer.blocked_autorange(min_run_time=max(min_time_s, self.min_run_time))
        return Block(np.asarray(measurement.times) * 1e9)


def harness_overhead_ns(rounds: int = 2000) -> float:
    """Median cost of one harness iteration around a no-op: clock reads, the call, the (no-op) sync."""
    samples = time_iterations(lambda: None, synchronize=lambda: None, cuda_events=False,
                              warmup=100, min_iters=rounds, min_time_s=0.0, max_time_s=5.0)
    return float(np.median(samples))


def halve_by_magnitude(model: XGLMClassifier) -> XGLMClassifier:
    """The control: 50% unstructured zeros in every decoder-layer linear, dense storage."""
    from sparsify.masks import MaskKeeper, unstructured_masks
    from sparsify.scores import magnitude
    from sparsify.targets import sparse_targets

    control = copy.deepcopy(model)
    params = sparse_targets(control)
    MaskKeeper(params).set(unstructured_masks(magnitude(params), 0.5))
    return control


def run(preset: str, backends: list[str], batch_size: int, seq_len: int, threads: int, rounds: int,
        min_time_s: float) -> dict[str, Any]:
    torch.set_num_threads(threads)
    model = XGLMClassifier(load_backbone(ModelSource.parse(f"random:{preset}"), seed=0), 3).eval()
    batch = random_batch(batch_size, seq_len)
    cfg = MeasureConfig(warmup_iters=3, block_iters=5, block_time_s=min_time_s, min_rounds=rounds, min_iters=1,
                        min_time_s=0.0)
    rule = StopRule(min_rounds=rounds, min_iters=1, min_time_s=0.0, max_time_s=3600.0, block_iters=5,
                    block_time_s=min_time_s)
    target = Target("cpu", "fp32", threads)
    example = (batch.input_ids[:2, :16], batch.attention_mask[:2, :16])
    out: dict[str, Any] = {"preset": preset, "batch_size": batch_size, "seq_len": seq_len, "threads": threads,
                           "rounds": rounds, "harness_overhead_ns": harness_overhead_ns(), "backends": {}}
    for backend in backends:
        runner = prepare(backend, model, target, example, BackendOptions(), workdir=_tmpdir())
        cells = [HarnessCell("harness", runner, batch, cfg), TimerCell("timer", runner, batch, threads, min_time_s)]
        result = run_rounds(cells, [SHAPE], rule)
        ratio = paired_ratio(result.blocks["timer"][SHAPE], result.blocks["harness"][SHAPE])  # timer / harness
        out["backends"][backend] = {
            "harness_p50_ms": LatencyStats.from_ns(result.samples("harness", SHAPE)).p50_ms,
            "timer_median_ms": float(np.median(result.samples("timer", SHAPE))) / 1e6,
            "ratio": 1 / ratio.value, "ratio_ci95": [1 / ratio.high, 1 / ratio.low],  # harness / timer, paired
        }
    out["masked_control"] = masked_control(model, batch, target, example, cfg, rule)
    return out


def masked_control(model, batch: Batch, target: Target, example, cfg: MeasureConfig, rule: StopRule) -> dict[str, Any]:
    """Dense vs 50%-zeros on eager, in the same rounds: the paired speedup must contain 1.0."""
    cells = [HarnessCell(name, prepare("eager", m, target, example, BackendOptions(), _tmpdir()), batch, cfg)
             for name, m in (("dense", model), ("masked", halve_by_magnitude(model)))]
    result = run_rounds(cells, [SHAPE], rule, pairs=[("dense", "masked")])
    ratio = paired_ratio(result.blocks["dense"][SHAPE], result.blocks["masked"][SHAPE])
    return {"speedup": ratio.value, "ci95_low": ratio.low, "ci95_high": ratio.high,
            "contains_1": bool(ratio.low <= 1.0 <= ratio.high), "rounds": result.rounds,
            "dense_p50_ms": LatencyStats.from_ns(result.samples("dense", SHAPE)).p50_ms,
            "masked_p50_ms": LatencyStats.from_ns(result.samples("masked", SHAPE)).p50_ms}


def _tmpdir():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="xglm-bench-agreement-"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--backends", default="eager,compile")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--min-time-s", type=float, default=0.5)
    args = parser.parse_args(argv)
    result = run(args.preset, args.backends.split(","), args.batch_size, args.seq_len, args.threads, args.rounds,
                 args.min_time_s)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
