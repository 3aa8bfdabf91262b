"""The one place that reads a clock. CUDA events on CUDA, perf_counter_ns elsewhere; the device is synchronised
so asynchronous work lands inside the measured interval. Build, export, compile and training durations use
`stopwatch`; steady-state latency uses `time_iterations`, warm-up excluded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass
class Elapsed:
    seconds: float = 0.0


@contextmanager
def stopwatch(synchronize: Callable[[], None] | None = None) -> Iterator[Elapsed]:
    """Wall time of a block (one-off costs: build, export, compile, training)."""
    elapsed = Elapsed()
    if synchronize:
        synchronize()
    start = time.perf_counter_ns()
    try:
        yield elapsed
    finally:
        if synchronize:
            synchronize()
        elapsed.seconds = (time.perf_counter_ns() - start) / 1e9


def time_iterations(
    fn: Callable[[], object],
    *,
    synchronize: Callable[[], None],
    cuda_events: bool,
    warmup: int,
    min_iters: int,
    min_time_s: float,
    max_time_s: float,
) -> np.ndarray:
    """Per-iteration latency in ns; runs until both min_iters and min_time_s are reached (or max_time_s)."""
    for _ in range(warmup):
        fn()
    synchronize()
    samples: list[int] = []
    begin = time.perf_counter_ns()
    min_ns, max_ns = int(min_time_s * 1e9), int(max_time_s * 1e9)
    if cuda_events:
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    while True:
        if cuda_events:
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(int(start.elapsed_time(end) * 1e6))  # ms -> ns
        else:
            t0 = time.perf_counter_ns()
            fn()
            synchronize()
            samples.append(time.perf_counter_ns() - t0)
        spent = time.perf_counter_ns() - begin
        if (len(samples) >= min_iters and spent >= min_ns) or spent >= max_ns:
            return np.asarray(samples, dtype=np.int64)
