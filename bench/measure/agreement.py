"""Does the harness time what an independent timer times? `python -m bench.measure.agreement`

On one model, shape, thread count and prepared runner, the harness's p50 (bench.measure.latency) is compared
with the median of torch.utils.benchmark.Timer (its own loop and clock, blocked autorange). The two are
interleaved over several rounds so that drift of a shared machine hits both alike. Also reported: the
harness's own cost per iteration (its loop around a no-op), and a masked-dense control (half of every
decoder-layer linear set to zero by magnitude), whose speedup over dense must be 1.0 within its CI: dense
kernels do not skip zeros.
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
from bench.measure.passes import latency
from bench.model.classifier import XGLMClassifier
from bench.model.source import ModelSource, load_backbone
from bench.measure.stats import LatencyStats, ratio_ci95
from bench.measure.timing import time_iterations


def random_batch(batch_size: int, seq_len: int, vocab: int = 1000, seed: int = 0) -> Batch:
    """Timing depends on shapes only; full-length rows (no padding) keep every position busy."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (batch_size, seq_len), generator=g)
    return Batch(ids, torch.ones_like(ids), np.arange(batch_size))


def independent_median_ms(runner, inputs, threads: int, min_run_time: float) -> float:
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="runner(inputs); runner.synchronize()",
                  globals={"runner": runner, "inputs": inputs}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


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
    cfg = MeasureConfig(warmup_iters=3, min_iters=20, min_time_s=min_time_s)
    target = Target("cpu", "fp32", threads)
    example = (batch.input_ids[:2, :16], batch.attention_mask[:2, :16])
    out: dict[str, Any] = {"preset": preset, "batch_size": batch_size, "seq_len": seq_len, "threads": threads,
                           "rounds": rounds, "harness_overhead_ns": harness_overhead_ns(), "backends": {}}
    for backend in backends:
        runner = prepare(backend, model, target, example, BackendOptions(), workdir=_tmpdir())
        inputs = runner.inputs(batch.input_ids, batch.attention_mask)
        harness, independent = [], []
        for _ in range(rounds):
            harness.append(latency(runner, batch, cfg)[0].p50_ms)
            independent.append(independent_median_ms(runner, inputs, threads, min_time_s))
        h, i = float(np.median(harness)), float(np.median(independent))
        out["backends"][backend] = {"harness_p50_ms": h, "timer_median_ms": i, "ratio": h / i,
                                    "harness_rounds_ms": harness, "timer_rounds_ms": independent}
    out["masked_control"] = masked_control(model, batch, target, example, cfg)
    return out


def masked_control(model, batch: Batch, target: Target, example, cfg: MeasureConfig) -> dict[str, float]:
    """Dense vs 50%-zeros on eager: both measured in alternation, ratio of medians with a bootstrap CI."""
    dense = prepare("eager", model, target, example, BackendOptions(), _tmpdir())
    masked = prepare("eager", halve_by_magnitude(model), target, example, BackendOptions(), _tmpdir())
    samples: dict[str, list[np.ndarray]] = {"dense": [], "masked": []}
    for _ in range(3):
        for name, runner in (("dense", dense), ("masked", masked)):
            inputs = runner.inputs(batch.input_ids, batch.attention_mask)
            samples[name].append(time_iterations(
                lambda: runner(inputs), synchronize=runner.synchronize, cuda_events=False, warmup=cfg.warmup_iters,
                min_iters=cfg.min_iters, min_time_s=cfg.min_time_s, max_time_s=cfg.max_time_s))
    d, m = np.concatenate(samples["dense"]), np.concatenate(samples["masked"])
    ratio, low, high = ratio_ci95(d, m)  # speedup of the masked model: dense time over masked time
    return {"speedup": ratio, "ci95_low": low, "ci95_high": high, "contains_1": bool(low <= 1.0 <= high),
            "dense_p50_ms": LatencyStats.from_ns(d).p50_ms, "masked_p50_ms": LatencyStats.from_ns(m).p50_ms}


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    result = run(args.preset, args.backends.split(","), args.batch_size, args.seq_len, args.threads, args.rounds,
                 args.min_time_s)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
