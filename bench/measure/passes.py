"""Measurements of one prepared runner: the pass over the evaluation set (throughput, predictions for accuracy
and parity), steady-state latency at fixed shapes, and memory in a pass of its own. Returns plain values;
formatting lives in reports/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.config import MeasureConfig
from bench.data.evalset import Batch, EvalSet
from bench.measure.energy import EnergyCounter, energy_fields
from bench.measure.memory import measure_memory
from bench.measure.stats import LatencyStats
from bench.measure.timing import stopwatch, time_iterations

if TYPE_CHECKING:
    from bench.backends import Runner


@dataclass
class EvalPass:
    logits: np.ndarray  # [N, labels] float32, in evaluation-set order
    seconds: float
    samples: int
    real_tokens: int
    padded_tokens: int

    def throughput_fields(self) -> dict[str, Any]:
        return {
            "throughput_samples_per_s": self.samples / self.seconds,
            "throughput_tokens_per_s": self.real_tokens / self.seconds,
            "throughput_padded_tokens_per_s": self.padded_tokens / self.seconds,
            "throughput_padding_share": 1 - self.real_tokens / self.padded_tokens,
            "throughput_samples": self.samples,
            "measured_s": self.seconds,
        }


def eval_pass(runner: Runner, evalset: EvalSet, batches: list[Batch]) -> EvalPass:
    """Every batch once, timed as a whole (outputs brought to the host, as a serving loop would)."""
    inputs = [runner.inputs(b.input_ids, b.attention_mask) for b in batches]
    seen: set[tuple[int, ...]] = set()
    for b, x in zip(batches, inputs):  # warm-up: one untimed call per distinct shape (compile, ORT allocations)
        if tuple(b.input_ids.shape) not in seen:
            seen.add(tuple(b.input_ids.shape))
            runner(x)
    outputs = []
    with stopwatch(runner.synchronize) as elapsed:
        for x in inputs:
            outputs.append(runner.logits(runner(x)))
    logits = np.empty((len(evalset), outputs[0].shape[1]), dtype=np.float32)
    for b, out in zip(batches, outputs):
        logits[b.index] = out
    return EvalPass(
        logits=logits, seconds=elapsed.seconds, samples=len(evalset),
        real_tokens=sum(b.real_tokens for b in batches), padded_tokens=sum(b.padded_tokens for b in batches),
    )


def latency(runner: Runner, batch: Batch, cfg: MeasureConfig) -> tuple[LatencyStats, np.ndarray, dict[str, Any]]:
    """(statistics, raw samples in ns, energy fields). Warm-up runs before the energy counter is read, so
    joules, like time, cover the steady-state iterations only."""
    inputs = runner.inputs(batch.input_ids, batch.attention_mask)
    for _ in range(cfg.warmup_iters):
        runner(inputs)
    counter = EnergyCounter.open(runner.target.device)
    start = counter.read_mj()
    samples = time_iterations(
        lambda: runner(inputs), synchronize=runner.synchronize, cuda_events=runner.cuda_events,
        warmup=0, min_iters=cfg.min_iters, min_time_s=cfg.min_time_s, max_time_s=cfg.max_time_s,
    )
    energy = energy_fields(start, counter.read_mj(), len(samples) * batch.input_ids.shape[0], counter)
    return LatencyStats.from_ns(samples), samples, energy


def memory(runner: Runner, batch: Batch) -> dict[str, Any]:
    inputs = runner.inputs(batch.input_ids, batch.attention_mask)
    runner(inputs)  # allocations of a first call at this shape are part of the peak, not of warm-up
    return measure_memory(lambda: runner(inputs), runner.synchronize, runner.target.device)


def parity(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Agreement with eager fp32 on the same artifact and rows: max |logit diff| and argmax agreement."""
    return {
        "max_abs_logit_diff": float(np.abs(logits - reference).max()),
        "agreement_vs_eager_fp32": float((logits.argmax(1) == reference.argmax(1)).mean()),
    }
