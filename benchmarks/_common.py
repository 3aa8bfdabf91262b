"""What the benchmark scripts share: a timed cell around any callable, right-padded batches, the machine's load,
and a table of paired ratios. Timing and ratios come from bench.measure (timing, rounds), as in a sweep."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bench.measure.rounds import Block, RoundsResult, Shape, paired_ratio
from bench.measure.stats import LatencyStats
from bench.measure.timing import time_iterations


class FnCell:
    """A round-scheduler cell around `fns[shape]()`: each block is `warmup` untimed calls, then at least `iters`
    timed calls and `min_time_s` (bench.measure.timing, perf_counter_ns on the CPU)."""

    def __init__(self, name: str, fns: dict[Shape, Callable[[], Any]], warmup: int = 1) -> None:
        self.name, self.fns, self.warmup = name, fns, warmup

    def block(self, shape: Shape, iters: int, min_time_s: float) -> Block:
        return Block(time_iterations(self.fns[shape], synchronize=lambda: None, cuda_events=False, warmup=self.warmup,
                                     min_iters=iters, min_time_s=min_time_s, max_time_s=120.0))


def padded_batch(batch_size: int, seq_len: int, vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right padded like a real batch: the longest row sets the width (seq_len), the others are 1/4 to all of it.
    A batch of one has no padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(1, seq_len // 4), seq_len + 1, (batch_size,), generator=g)
    lengths[0] = seq_len
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()  # [B, T]
    ids = torch.randint(4, vocab, (batch_size, seq_len), generator=g).masked_fill(mask == 0, 1)  # pad id 1
    return ids, mask


def machine() -> str:
    """CPU model, cores, torch threads and the load average right now (the machine is shared)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load}"


def ratio_rows(result: RoundsResult, pairs: Sequence[tuple[str, str]], shapes: Sequence[Shape]) -> list[dict[str, Any]]:
    """Per shape and pair (reference, cell): both p50s and the paired speedup reference/cell with its 95% CI."""
    rows = []
    for shape in shapes:
        for reference, cell in pairs:
            ratio = paired_ratio(result.blocks[reference][shape], result.blocks[cell][shape])
            rows.append({
                "batch_size": shape[0], "seq_len": shape[1], "cell": cell, "reference": reference,
                "cell_p50_ms": LatencyStats.from_ns(result.samples(cell, shape)).p50_ms,
                "reference_p50_ms": LatencyStats.from_ns(result.samples(reference, shape)).p50_ms,
                "speedup": None if ratio is None else ratio.value,
                "ci95": None if ratio is None else [ratio.low, ratio.high],
                "rounds": None if ratio is None else ratio.rounds,
            })
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'shape':>9}  {'cell':<28} {'vs':<22} {'cell ms':>9} {'ref ms':>9}  speedup [95% CI]")
    for r in rows:
        ci = "n/a" if r["ci95"] is None else f"{r['speedup']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        print(f"{r['batch_size']:>3}x{r['seq_len']:<5}  {r['cell']:<28} {r['reference']:<22} {r['cell_p50_ms']:>9.2f} "
              f"{r['reference_p50_ms']:>9.2f}  {ci}")

