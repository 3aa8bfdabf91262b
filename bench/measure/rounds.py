"""Interleaved rounds: cells that will be compared are measured in turns, so that drift hits them alike.

In each round every cell runs one block of iterations at each shape, in an order that rotates (or is shuffled,
seeded) from round to round. A ratio between two cells is then taken round by round, each the ratio of the two
blocks' medians, and summarised as the median of those per-round ratios with a 95% CI from a bootstrap over rounds
(`paired_ratio`): a machine that slows down by 30% between round 2 and round 9 slows both cells of each round
alike, and the ratio does not move. Per-cell statistics (p50, tails) stay over all of a cell's samples.

The scheduler knows nothing of processes or backends: a cell is anything with `block(shape, iters, min_time_s)`.
It runs until the stopping rule is met: at least `min_rounds` rounds, `min_iters` samples and `min_time_s` of
measured time per cell and shape, and optionally every ratio's CI half-width within `target_ci_pct`; capped by
`max_time_s` of measured time per cell and shape. Why it stopped is recorded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

Shape = tuple[int, int]  # (batch_size, seq_len)
_RESAMPLES = 2000
_SEED = 0


@dataclass(frozen=True)
class Block:
    samples_ns: np.ndarray  # per-iteration durations of one block
    energy_mj: float | None = None  # energy over the block's window, where a counter exists

    @property
    def median_ns(self) -> float:
        return float(np.median(self.samples_ns))


class CellLost(Exception):
    """A cell can no longer be measured (its process died, it timed out); the message says why."""


class Timed(Protocol):
    name: str

    def block(self, shape: Shape, iters: int, min_time_s: float) -> Block: ...


@dataclass(frozen=True)
class StopRule:
    min_rounds: int = 10
    min_iters: int = 20
    min_time_s: float = 1.0
    max_time_s: float = 60.0  # of measured time per cell and shape
    target_ci_pct: float | None = None  # stop early once every ratio's CI half-width is within this (%)
    block_iters: int = 2
    block_time_s: float = 0.0

    @classmethod
    def from_config(cls, cfg) -> StopRule:
        return cls(cfg.min_rounds, cfg.min_iters, cfg.min_time_s, cfg.max_time_s, cfg.target_ci_pct,
                   cfg.block_iters, cfg.block_time_s)


@dataclass
class RoundsResult:
    blocks: dict[str, dict[Shape, list[Block]]]  # cell -> shape -> one block per round it took part in
    rounds: int = 0
    stopped_by: str = ""
    orders: list[list[str]] = field(default_factory=list)  # the cell order of each round
    lost: dict[str, str] = field(default_factory=dict)  # cell -> why it left the rounds
    seconds: float = 0.0

    def samples(self, cell: str, shape: Shape) -> np.ndarray:
        blocks = self.blocks[cell][shape]
        return np.concatenate([b.samples_ns for b in blocks]) if blocks else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Ratio:
    """median over rounds of median(reference block) / median(cell block), with a bootstrap 95% CI over rounds."""

    value: float
    low: float
    high: float
    rounds: int

    @property
    def half_width_pct(self) -> float:
        return 100 * (self.high - self.low) / 2 / self.value


def round_order(names: Sequence[str], index: int, how: str, seed: int) -> list[str]:
    """Rotation shifts the order by one cell per round, so every cell takes every position equally often;
    shuffle draws a fresh seeded permutation each round."""
    names = list(names)
    if how == "shuffle":
        random.Random(f"{seed}|{index}").shuffle(names)
        return names
    shift = index % len(names) if names else 0
    return names[shift:] + names[:shift]


def run_rounds(cells: Sequence[Timed], shapes: Sequence[Shape], rule: StopRule, *,
               pairs: Sequence[tuple[str, str]] = (), order: str = "rotate", seed: int = 0,
               on_round: Callable[[RoundsResult], None] | None = None) -> RoundsResult:
    """Measure `cells` in interleaved rounds until `rule` says stop. `pairs` (reference, cell) are the ratios the
    precision target applies to. A cell that raises CellLost leaves the rounds; the others go on."""
    result = RoundsResult(blocks={c.name: {s: [] for s in shapes} for c in cells})
    active = {c.name: c for c in cells}
    started = time.perf_counter()
    while active:
        names = round_order(list(active), result.rounds, order, seed)
        result.orders.append(names)
        for shape in shapes:
            for name in names:
                if name not in active:
                    continue
                try:
                    block = active[name].block(shape, rule.block_iters, rule.block_time_s)
                except CellLost as exc:
                    result.lost[name] = str(exc)
                    del active[name]
                    continue
                result.blocks[name][shape].append(block)
        result.rounds += 1
        if on_round is not None:
            on_round(result)
        reason = stop_reason(result, list(active), shapes, rule, pairs)
        if reason:
            result.stopped_by = reason
            break
    if not active:
        result.stopped_by = result.stopped_by or "no cell left"
    result.seconds = time.perf_counter() - started
    return result


def stop_reason(result: RoundsResult, active: list[str], shapes: Sequence[Shape], rule: StopRule,
                pairs: Sequence[tuple[str, str]]) -> str | None:
    measured = [(result.samples(c, s)) for c in active for s in shapes]
    if any(x.sum() / 1e9 >= rule.max_time_s for x in measured):
        return "max_time_s"
    if result.rounds < rule.min_rounds:
        return None
    if any(x.size < rule.min_iters or x.sum() / 1e9 < rule.min_time_s for x in measured):
        return None
    if rule.target_ci_pct is None:
        return "minimums"
    for reference, cell in pairs:
        if reference not in active or cell not in active:
            continue
        for shape in shapes:
            ratio = paired_ratio(result.blocks[reference][shape], result.blocks[cell][shape])
            if ratio is None or ratio.half_width_pct > rule.target_ci_pct:
                return None
    return "target_ci_pct"


def paired_ratio(reference: Sequence[Block], cell: Sequence[Block]) -> Ratio | None:
    """Per round, median(reference) / median(cell) (above 1: the cell is faster); their median over rounds with a
    percentile-bootstrap 95% CI (rounds resampled with replacement, fixed seed). None with fewer than 2 rounds."""
    rounds = min(len(reference), len(cell))
    if rounds < 2:
        return None
    per_round = np.array([reference[i].median_ns / cell[i].median_ns for i in range(rounds)])
    rng = np.random.default_rng(_SEED)
    medians = np.median(per_round[rng.integers(0, rounds, size=(_RESAMPLES, rounds))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return Ratio(float(np.median(per_round)), float(low), float(high), rounds)


def drift(blocks: Sequence[Block]) -> float | None:
    """A cell's trend over the run: median of its block medians in the last quarter of rounds over the first
    quarter (1.10: it ran 10% slower at the end). None with fewer than 4 rounds."""
    if len(blocks) < 4:
        return None
    quarter = len(blocks) // 4
    medians = [b.median_ns for b in blocks]
    return float(np.median(medians[-quarter:]) / np.median(medians[:quarter]))
