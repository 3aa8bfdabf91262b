"""Interleaved rounds: cells that will be compared are measured in turns, so that drift hits them alike.

In each round every cell runs one block of iterations at each shape, in an order that rotates (or is shuffled,
seeded) from round to round. A ratio between two cells is then taken round by round, each the ratio of the two
blocks' medians, and summarised as the median of those per-round ratios with a distribution-free interval over
rounds (order statistics, at least 95 %, its exact coverage recorded; `paired_ratio`): a machine that slows down by 30% between round 2 and round 9 slows both cells of each round
alike, and the ratio does not move. Per-cell statistics (p50, tails) stay over all of a cell's samples.

Pairing cancels only what is shared by the two blocks, and a shared machine's speed also wanders over seconds:
on a 2-core cloud VM the per-round ratio of two identical cells scattered by 12-14% when their blocks were 4 or
more blocks apart, 8.5% when adjacent, and 6.6% when one sat between two blocks of the other. So a cell that others
are compared with (the dense reference of its backend) can run `reference_every` k: in every round it runs again
after every k cells that refer to it, and each of those cells is paired with the geometric mean of the reference
blocks on either side of its own (`round_sequence`, `paired_ratio`). The reference gets more samples; the others
keep theirs, and need fewer rounds for the same precision.

The scheduler knows nothing of processes or backends: a cell is anything with `block(shape, iters, min_time_s)`.
It runs until the stopping rule is met: at least `min_rounds` rounds, `min_iters` samples and `min_time_s` of
measured time per cell and shape, and optionally every ratio's CI half-width within `target_ci_pct`; capped by
`max_time_s` of measured time per cell and shape. Why it stopped is recorded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from bench.measure.stats import median_interval, sign_test_p

Shape = tuple[int, int]  # (batch_size, seq_len)


@dataclass(frozen=True)
class Block:
    samples_ns: np.ndarray  # per-iteration durations of one block
    energy_mj: float | None = None  # energy over the block's window, where a counter exists
    round: int = -1  # the round it ran in (run_rounds stamps it; -1: not from rounds, paired by position)
    seq: int = -1  # its place in the run's sequence of blocks (time order)

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
    max_rounds: int | None = None

    @classmethod
    def from_config(cls, cfg) -> StopRule:
        return cls(cfg.min_rounds, cfg.min_iters, cfg.min_time_s, cfg.max_time_s, cfg.target_ci_pct,
                   cfg.block_iters, cfg.block_time_s, cfg.max_rounds)


@dataclass
class RoundsResult:
    blocks: dict[str, dict[Shape, list[Block]]]  # cell -> shape -> its blocks in time order (a reference: several a round)
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
    """median over rounds of median(reference block) / median(cell block), with its order-statistic interval over
    rounds (coverage `level`, marginal: it covers this ratio alone) and the sign test's p-value against 1.0."""

    value: float
    low: float
    high: float
    rounds: int
    level: float = 0.95
    p_value: float = 1.0

    @property
    def half_width_pct(self) -> float:
        return 100 * (self.high - self.low) / 2 / self.value

    @property
    def mde_pct(self) -> float | None:
        """The smallest effect this ratio could have shown, in %: a true ratio that far from 1.0, with the same
        spread of per-round ratios around it, puts the whole interval on one side of 1.0 (the wider side of the
        interval, on the log scale). None where the interval cannot reach 95 % (fewer than 6 rounds): no effect
        is detectable then."""
        if self.level < 0.95 or self.low <= 0:
            return None
        wider = max(np.log(self.value / self.low), np.log(self.high / self.value))
        return float(100 * np.expm1(wider))


def round_order(names: Sequence[str], index: int, how: str, seed: int) -> list[str]:
    """Rotation shifts the order by one cell per round, so every cell takes every position equally often;
    shuffle draws a fresh seeded permutation each round."""
    names = list(names)
    if how == "shuffle":
        random.Random(f"{seed}|{index}").shuffle(names)
        return names
    shift = index % len(names) if names else 0
    return names[shift:] + names[:shift]


def round_sequence(names: Sequence[str], index: int, how: str, seed: int,
                   references: Mapping[str, str] | None = None, every: int = 0) -> list[str]:
    """The blocks of one round, in order. Without references (or every = 0), each cell once in `round_order`.
    Otherwise the cells that refer to a reference run together, in that order, with the reference before the
    first, after every `every`-th, and after the last: R a b R c d R (every = 2) or R a R b R c R (every = 1).
    Which reference's cells come first rotates too, as do cells with no reference, which keep their place."""
    references = {c: r for c, r in (references or {}).items() if c in names and r in names and c != r} if every else {}
    references = {c: r for c, r in references.items() if c not in references.values()}  # no chains: one level
    order = round_order([n for n in names if n not in set(references.values())], index, how, seed)
    runs: dict[str, list[str]] = {}
    sequence: list[str] = []
    for name in order:
        reference = references.get(name)
        if reference is None:
            sequence.append(name)
        elif reference not in runs:
            runs[reference] = [name]
            sequence.append(reference)  # a placeholder where this reference's run goes
        else:
            runs[reference].append(name)
    out: list[str] = []
    for name in sequence:
        if name not in runs:
            out.append(name)
            continue
        members = runs[name]
        out.append(name)
        for i, member in enumerate(members, 1):
            out.append(member)
            if i % every == 0 or i == len(members):
                out.append(name)
    return out


def run_rounds(cells: Sequence[Timed], shapes: Sequence[Shape], rule: StopRule, *,
               pairs: Sequence[tuple[str, str]] = (), order: str = "rotate", seed: int = 0,
               references: Mapping[str, str] | None = None, reference_every: int = 0,
               on_round: Callable[[RoundsResult], None] | None = None) -> RoundsResult:
    """Measure `cells` in interleaved rounds until `rule` says stop. `pairs` (reference, cell) are the ratios the
    precision target applies to; `references` (cell -> the cell it is compared with) and `reference_every` place
    reference blocks beside their cells' (`round_sequence`). A cell that raises CellLost leaves the rounds; the
    others go on."""
    result = RoundsResult(blocks={c.name: {s: [] for s in shapes} for c in cells})
    active = {c.name: c for c in cells}
    started = time.perf_counter()
    seq = 0
    while active:
        names = round_sequence(list(active), result.rounds, order, seed, references, reference_every)
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
                result.blocks[name][shape].append(replace(block, round=result.rounds, seq=seq))
                seq += 1
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
    if rule.max_rounds is not None and result.rounds >= rule.max_rounds:
        return "max_rounds"
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
            if ratio is None or ratio.mde_pct is None or ratio.mde_pct > rule.target_ci_pct:
                return None
    return "target_ci_pct"


def paired_ratio(reference: Sequence[Block], cell: Sequence[Block]) -> Ratio | None:
    """Per round, median(reference) / median(cell) (above 1: the cell is faster); their median over rounds with the
    order-statistic interval of that median (`median_interval`: [min, max] at 6 rounds, 96.9 %) and the sign test
    against 1.0. None with fewer than 2 rounds."""
    per_round = per_round_ratios(reference, cell)
    rounds = len(per_round)
    if rounds < 2:
        return None
    interval = median_interval(per_round)
    return Ratio(float(np.median(per_round)), interval.low, interval.high, rounds, interval.level,
                 sign_test_p(per_round))


def per_round_ratios(reference: Sequence[Block], cell: Sequence[Block]) -> np.ndarray:
    """One ratio median(reference) / median(cell) per round. Where the reference ran more than once in a round, the
    cell's block is paired with the geometric mean of the reference blocks just before and just after it (the
    nearest one alone at either end); a cell with several blocks in a round (a reference against its eager twin)
    gives that round the geometric mean of theirs. Blocks not stamped by run_rounds pair the i-th of each."""
    if all(b.round >= 0 for b in (*reference, *cell)):
        by_round: dict[int, list[float]] = {}
        for block in cell:
            ratio = _round_ratio(reference, block)
            if ratio is not None:
                by_round.setdefault(block.round, []).append(np.log(ratio))
        return np.exp([np.mean(logs) for logs in by_round.values()]) if by_round else np.empty(0)
    return np.array([r.median_ns / c.median_ns for r, c in zip(reference, cell)])


def _round_ratio(reference: Sequence[Block], block: Block) -> float | None:
    same = [r for r in reference if r.round == block.round]
    if not same:
        return None
    before = [r for r in same if r.seq < block.seq]
    after = [r for r in same if r.seq > block.seq]
    flank = ([before[-1]] if before else []) + ([after[0]] if after else [])
    return float(np.exp(np.mean([np.log(r.median_ns) for r in flank])) / block.median_ns)


def rounds_of(blocks: Sequence[Block]) -> int:
    """How many rounds these blocks ran in (a reference may run several blocks a round)."""
    return len({b.round for b in blocks}) if all(b.round >= 0 for b in blocks) else len(blocks)


def drift(blocks: Sequence[Block]) -> float | None:
    """A cell's trend over the run: median of its block medians in the last quarter of its blocks over the first
    quarter (1.10: it ran 10% slower at the end). None with fewer than 4 rounds."""
    if rounds_of(blocks) < 4 or len(blocks) < 4:
        return None
    quarter = len(blocks) // 4
    medians = [b.median_ns for b in blocks]
    return float(np.median(medians[-quarter:]) / np.median(medians[:quarter]))
