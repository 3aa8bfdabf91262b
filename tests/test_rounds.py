"""Interleaved rounds: paired ratios survive drift, the scheduler's order and stopping rule, batches that keep
every ratio paired."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.rounds import Block, CellLost, StopRule, drift, paired_ratio, round_order, run_rounds
from bench.measure.stats import ratio_interval
from bench.run.group import plan_batches

MS = 1_000_000
SHAPE = (8, 128)


class Synthetic:
    """A cell whose true latency is `ms`, on a machine whose speed drifts with the clock of the whole run: the
    k-th block measured by anyone runs at drift(k) x its true time, plus lognormal noise."""

    def __init__(self, name: str, ms: float, clock: list[int], drift_total: float = 0.30, total_blocks: int = 40,
                 seed: int = 0) -> None:
        self.name, self.ms, self.clock, self.drift_total, self.total = name, ms, clock, drift_total, total_blocks
        self.rng = np.random.default_rng(seed)
        self.calls: list[tuple] = []

    def block(self, shape, iters, min_time_s) -> Block:
        self.calls.append((shape, iters, min_time_s))
        factor = 1 + self.drift_total * min(self.clock[0] / self.total, 1.0)
        self.clock[0] += 1
        samples = self.ms * MS * factor * self.rng.lognormal(0, 0.03, size=iters)
        return Block(samples.astype(np.int64))


def _sequential(a: Synthetic, b: Synthetic, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """The old way: all of a's blocks, then all of b's."""
    first = np.concatenate([a.block(SHAPE, 5, 0).samples_ns for _ in range(blocks)])
    second = np.concatenate([b.block(SHAPE, 5, 0).samples_ns for _ in range(blocks)])
    return first, second


def test_a_30pct_drift_biases_the_sequential_ratio_but_not_the_paired_one():
    """Two cells of identical true speed (a masked-dense control against dense) on a machine that slows down by
    30% over the run: measured one after the other the control looks ~15% slower; in rounds it is 1.00x."""
    clock = [0]
    dense, control = Synthetic("dense", 10.0, clock, seed=1), Synthetic("control", 10.0, clock, seed=2)
    seq_dense, seq_control = _sequential(dense, control, blocks=20)
    sequential, low, high, _ = ratio_interval(seq_dense, seq_control)
    assert sequential < 0.9 and high < 1.0  # biased, and "significant"

    clock[0] = 0
    result = run_rounds([dense, control], [SHAPE], StopRule(min_rounds=20, min_iters=1, min_time_s=0, block_iters=5),
                        pairs=[("dense", "control")])
    paired = paired_ratio(result.blocks["dense"][SHAPE], result.blocks["control"][SHAPE])
    assert paired.low <= 1.0 <= paired.high
    assert paired.value == pytest.approx(1.0, abs=0.03)
    # The drift is visible on the reference's own trend, not hidden.
    assert drift(result.blocks["dense"][SHAPE]) == pytest.approx(1.26, abs=0.06)


def test_a_real_2x_difference_is_found_under_drift():
    clock = [0]
    slow, fast = Synthetic("dense", 10.0, clock, seed=3), Synthetic("pruned", 5.0, clock, seed=4)
    result = run_rounds([slow, fast], [SHAPE], StopRule(min_rounds=12, min_iters=1, min_time_s=0, block_iters=3))
    ratio = paired_ratio(result.blocks["dense"][SHAPE], result.blocks["pruned"][SHAPE])
    assert ratio.value == pytest.approx(2.0, rel=0.03) and 1.9 < ratio.low <= ratio.high < 2.1


def test_rotation_puts_every_cell_in_every_position_equally_often():
    names = ["a", "b", "c", "d"]
    orders = [round_order(names, i, "rotate", seed=0) for i in range(8)]
    for position in range(4):
        assert sorted(o[position] for o in orders) == sorted(names * 2)
    shuffled = [round_order(names, i, "shuffle", seed=7) for i in range(3)]
    assert shuffled == [round_order(names, i, "shuffle", seed=7) for i in range(3)]  # seeded: reproducible
    assert all(sorted(o) == names for o in shuffled)


def test_stopping_rule_minimums_target_and_cap():
    clock = [0]
    cells = [Synthetic("dense", 1.0, clock, drift_total=0), Synthetic("v", 1.0, clock, drift_total=0, seed=5)]
    # Minimums: 3 rounds are enough for rounds, but 10 iterations per cell need 5 rounds of 2.
    result = run_rounds(cells, [SHAPE], StopRule(min_rounds=3, min_iters=10, min_time_s=0, block_iters=2))
    assert (result.rounds, result.stopped_by) == (5, "minimums")
    assert [len(result.blocks[c][SHAPE]) for c in ("dense", "v")] == [5, 5]
    assert all(call == (SHAPE, 2, 0.0) for call in cells[0].calls)
    # A precision target: stops as soon as the ratio's CI half-width is within 5% (3% noise: after a few rounds).
    result = run_rounds(cells, [SHAPE], StopRule(min_rounds=2, min_iters=1, min_time_s=0, block_iters=2,
                                                 target_ci_pct=5.0, max_time_s=1.0), pairs=[("dense", "v")])
    assert result.stopped_by == "target_ci_pct"
    assert paired_ratio(result.blocks["dense"][SHAPE], result.blocks["v"][SHAPE]).half_width_pct <= 5.0
    # An unreachable target is capped by max_time_s of measured time per cell (1 ms blocks of 2: 0.05 s = 25 rounds).
    result = run_rounds(cells, [SHAPE], StopRule(min_rounds=2, min_iters=1, min_time_s=0, block_iters=2,
                                                 target_ci_pct=1e-6, max_time_s=0.05), pairs=[("dense", "v")])
    assert result.stopped_by == "max_time_s" and 24 <= result.rounds <= 26


def test_a_lost_cell_leaves_the_rounds_and_the_others_go_on():
    clock = [0]

    class Dies(Synthetic):
        def block(self, shape, iters, min_time_s):
            if len(self.calls) == 2:
                raise CellLost("cell process died (killed by SIGKILL - out of memory?)")
            return super().block(shape, iters, min_time_s)

    cells = [Synthetic("dense", 1.0, clock), Dies("v", 1.0, clock)]
    result = run_rounds(cells, [SHAPE, (1, 64)], StopRule(min_rounds=4, min_iters=1, min_time_s=0))
    assert result.rounds == 4 and "SIGKILL" in result.lost["v"]
    assert len(result.blocks["v"][SHAPE]) == 1 and len(result.blocks["v"][(1, 64)]) == 1
    assert len(result.blocks["dense"][SHAPE]) == 4


def test_paired_ratio_needs_two_rounds_and_drift_four():
    one = [Block(np.array([MS, MS]))]
    assert paired_ratio(one, one) is None and drift(one * 3) is None
    assert drift([Block(np.array([MS]))] * 2 + [Block(np.array([2 * MS]))] * 2) == 2.0


@pytest.mark.parametrize("max_live", [2, 3, 4, 5, 7, 100])
def test_batches_keep_every_ratio_paired_and_fit(max_live):
    variants, backends = ["dense", "u30", "u50", "s50", "pt"], ["eager", "compile", "onnxruntime"]
    cells = [(v, b) for v in variants for b in backends]
    batches = plan_batches(cells, "dense", max_live)
    assert all(len(batch) <= max_live for batch in batches)
    assert {cell for batch in batches for cell in batch} == set(cells)
    for variant, backend in cells:  # each cell shares a batch with the dense cell of its backend
        assert any((variant, backend) in batch and ("dense", backend) in batch for batch in batches)
    if max_live >= 6:  # a whole variant with its references fits: vs-eager ratios are paired too
        for variant, backend in cells:
            assert any((variant, backend) in batch and (variant, "eager") in batch for batch in batches)
    if max_live >= len(cells):
        assert batches == [cells]
