"""Reference blocks beside their cells: the round sequence puts the dense reference next to every cell compared
with it, and the paired ratio uses the reference blocks on either side, which cancels a machine whose speed wanders
over seconds (what pairing once per round cannot)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.measure.rounds import Block, StopRule, paired_ratio, round_order, round_sequence, rounds_of, run_rounds

MS = 1_000_000
SHAPE = (8, 128)
NAMES = ["dense-e", "a-e", "b-e", "c-e", "dense-o", "a-o", "b-o", "lonely"]
REFS = {"a-e": "dense-e", "b-e": "dense-e", "c-e": "dense-e", "a-o": "dense-o", "b-o": "dense-o"}


@pytest.mark.parametrize("every", [1, 2, 3])
def test_every_cell_runs_once_beside_its_reference(every):
    for index in range(6):
        seq = round_sequence(NAMES, index, "rotate", 0, REFS, every)
        assert sorted(n for n in seq if n not in ("dense-e", "dense-o")) == sorted(set(NAMES) - {"dense-e", "dense-o"})
        for cell, ref in REFS.items():
            i = seq.index(cell)
            neighbours = [seq[j] for j in (i - 1, i + 1) if 0 <= j < len(seq)]
            if every == 1:
                assert neighbours == [ref, ref]  # R a R b R
            if every == 2:
                assert ref in neighbours  # R a b R: a reference right beside every cell
            assert ref in seq[max(0, i - every):i] and ref in seq[i + 1:i + every + 1]  # a reference on either side
        members = {ref: sum(r == ref for r in REFS.values()) for ref in set(REFS.values())}
        for ref, n in members.items():
            assert seq.count(ref) == math.ceil(n / every) + 1


def test_without_references_the_sequence_is_the_plain_order():
    for index in range(4):
        assert round_sequence(NAMES, index, "rotate", 0, REFS, 0) == round_order(NAMES, index, "rotate", 0)
        assert round_sequence(NAMES, index, "shuffle", 3, None, 2) == round_order(NAMES, index, "shuffle", 3)


def test_cells_take_turns_next_to_the_reference_and_chains_are_cut():
    firsts = {round_sequence(NAMES, i, "rotate", 0, REFS, 2)[1] for i in range(8)}
    assert {"a-e", "b-e", "c-e"} <= firsts  # who sits right after the reference rotates
    chained = round_sequence(["r", "m", "x"], 0, "rotate", 0, {"m": "r", "x": "m"}, 1)
    assert sorted(set(chained)) == ["m", "r", "x"]  # a reference that has its own reference still runs


def _block(ms: float, round_: int, seq: int) -> Block:
    return Block(np.array([int(ms * MS)]), round=round_, seq=seq)


def test_a_block_is_paired_with_the_geometric_mean_of_the_reference_blocks_around_it():
    reference = [_block(10, 0, 0), _block(12.1, 0, 2), _block(20, 1, 5)]
    cell = [_block(11, 0, 1), _block(10, 1, 6)]
    ratio = paired_ratio(reference, cell)
    assert ratio.rounds == 2
    per_round = sorted([math.sqrt(10 * 12.1) / 11, 20 / 10])  # round 0 flanked; round 1: the nearest alone
    assert ratio.value == pytest.approx(np.median(per_round))
    assert paired_ratio([_block(10, 0, 0)], [_block(10, 1, 1), _block(10, 2, 2)]) is None  # no shared round


class Machine:
    """A shared machine whose speed wanders from block to block (log-speed AR(1): correlated over ~10 blocks, as
    measured on a 2-core VM), plus white noise per iteration."""

    def __init__(self, seed: int, phi: float = 0.9, step: float = 0.05, white: float = 0.02) -> None:
        self.rng, self.phi, self.step, self.white, self.level = np.random.default_rng(seed), phi, step, white, 0.0

    def cell(self, name: str, ms: float) -> Cell:
        return Cell(name, ms, self)

    def tick(self, iters: int) -> np.ndarray:
        self.level = self.phi * self.level + self.rng.normal(0, self.step)
        return np.exp(self.level + self.rng.normal(0, self.white, size=iters))


class Cell:
    def __init__(self, name: str, ms: float, machine: Machine) -> None:
        self.name, self.ms, self.machine = name, ms, machine

    def block(self, shape, iters, min_time_s) -> Block:
        return Block((self.ms * MS * self.machine.tick(iters)).astype(np.int64))


def _errors(every: int, seeds: range) -> list[float]:
    """|log ratio| of identical cells against the reference (truth: 1.00), over seeds and cells."""
    errors = []
    for seed in seeds:
        machine = Machine(seed)
        cells = [machine.cell("dense", 10.0)] + [machine.cell(f"c{i}", 10.0) for i in range(8)]
        result = run_rounds(cells, [SHAPE], StopRule(min_rounds=12, min_iters=1, min_time_s=0, block_iters=2),
                            references={f"c{i}": "dense" for i in range(8)}, reference_every=every)
        for i in range(8):
            ratio = paired_ratio(result.blocks["dense"][SHAPE], result.blocks[f"c{i}"][SHAPE])
            errors.append(abs(math.log(ratio.value)))
    return errors


def test_reference_blocks_beside_each_cell_cancel_a_wandering_machine():
    once, beside = np.mean(_errors(0, range(12))), np.mean(_errors(1, range(12)))
    assert beside < 0.65 * once, (once, beside)  # 0.010 against 0.022 with these seeds
    assert beside < 0.02


def test_a_real_difference_survives_and_rounds_are_rounds():
    machine = Machine(11)
    cells = [machine.cell("dense", 10.0), machine.cell("half", 5.0), machine.cell("same", 10.0)]
    result = run_rounds(cells, [SHAPE], StopRule(min_rounds=10, min_iters=1, min_time_s=0, block_iters=2),
                        references={"half": "dense", "same": "dense"}, reference_every=1)
    half = paired_ratio(result.blocks["dense"][SHAPE], result.blocks["half"][SHAPE])
    assert half.value == pytest.approx(2.0, rel=0.03) and half.low <= 2.0 <= half.high
    dense = result.blocks["dense"][SHAPE]
    assert rounds_of(dense) == result.rounds == 10 and len(dense) == 30  # R half R same R, ten times
    assert [b.seq for b in dense] == sorted(b.seq for b in dense)


def test_max_rounds_stops_the_rounds():
    machine = Machine(0)
    result = run_rounds([machine.cell("a", 1.0), machine.cell("b", 1.0)], [SHAPE],
                        StopRule(min_rounds=2, min_iters=10_000, min_time_s=0, max_rounds=5))
    assert result.rounds == 5 and result.stopped_by == "max_rounds"


def test_two_references_compared_give_one_ratio_per_round():
    """dense on ORT vs dense on eager: both run several blocks a round, and each round still counts once."""
    machine = Machine(5)
    cells = [machine.cell("d-e", 10.0), machine.cell("x-e", 10.0), machine.cell("y-e", 10.0),
             machine.cell("d-o", 5.0), machine.cell("x-o", 5.0)]
    result = run_rounds(cells, [SHAPE], StopRule(min_rounds=6, min_iters=1, min_time_s=0),
                        references={"x-e": "d-e", "y-e": "d-e", "x-o": "d-o"}, reference_every=1)
    ratio = paired_ratio(result.blocks["d-e"][SHAPE], result.blocks["d-o"][SHAPE])
    assert ratio.rounds == 6 and ratio.value == pytest.approx(2.0, rel=0.1)
