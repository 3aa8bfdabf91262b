"""Measurements of one prepared runner: the pass over the evaluation set (throughput, predictions for accuracy
and parity), warm-up and one timed block at a fixed shape (the unit of an interleaved round, bench.measure.rounds),
and memory in a pass of its own. Returns plain values; formatting lives in reports/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.config import MeasureConfig
from bench.data.evalset import Batch, EvalSet
from bench.measure.energy import EnergyCounter
from bench.measure.memory import measure_memory
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
            for _ in range(runner.warmup_per_shape):
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


def warm_up(runner: Runner, inputs: Any, iters: int) -> None:
    """Untimed calls at one shape before it is ever timed: compile's recompiles, CUDA-graph capture, ORT's first
    allocations and cold caches all land here (at least one call, whatever `iters` says)."""
    for _ in range(max(1, iters, runner.warmup_per_shape)):  # CUDA graphs: warm up, record, replay
        runner(inputs)
    runner.synchronize()


def time_block(runner: Runner, inputs: Any, cfg: MeasureConfig, iters: int, min_time_s: float,
               counter: EnergyCounter | None = None) -> tuple[np.ndarray, float | None]:
    """One block of a round: `cfg.block_warmup` untimed calls (the cache state another cell left behind), then at
    least `iters` timed iterations and `min_time_s`, capped at `cfg.max_time_s`. Returns the samples (ns) and the
    energy of the timed window in mJ: read after the device is synchronised, so queued warm-up work is not in it."""
    for _ in range(cfg.block_warmup):
        runner(inputs)
    runner.synchronize()
    start = counter.read_mj() if counter is not None else None
    samples = time_iterations(
        lambda: runner(inputs), synchronize=runner.synchronize, cuda_events=runner.cuda_events,
        warmup=0, min_iters=iters, min_time_s=min_time_s, max_time_s=cfg.max_time_s,
    )
    end = counter.read_mj() if counter is not None else None
    return samples, (None if start is None or end is None else float(end - start))


def memory(runner: Runner, batch: Batch) -> dict[str, Any]:
    """This shape's own peak: cached memory released first (torch's cache, ORT's arena), then warm-up calls."""
    inputs = runner.inputs(batch.input_ids, batch.attention_mask)
    runner.release_memory()
    for _ in range(runner.warmup_per_shape):  # untimed: compile and CUDA-graph capture are not this shape's steady state
        runner(inputs)
    return measure_memory(lambda: runner(inputs), runner.synchronize, runner.target.device, allocator=runner.allocator)


def parity(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Agreement with eager fp32 on the same artifact and rows: max |logit diff| and argmax agreement."""
    return {
        "max_abs_logit_diff": float(np.abs(logits - reference).max()),
        "agreement_vs_eager_fp32": float((logits.argmax(1) == reference.argmax(1)).mean()),
    }
