"""The built-in A/A control: a twin of the dense reference, in the rounds beside it like any cell, whose paired ratio
contains 1.0 and whose half-width is the resolution floor every record of the group carries; which backends get one;
and what the rounds, the records and the precision target make of it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bench.measure.rounds import StopRule, paired_ratio, run_rounds
from bench.run.group import aa_twins
from bench.run.records import resolution_fields, twin_id, twin_reference
from test_reference_blocks import SHAPE, Machine

RULE = StopRule(min_rounds=12, min_iters=1, min_time_s=0, block_iters=2)


def _rounds(seed: int, rule: StopRule = RULE, pairs=()):
    machine = Machine(seed)
    names = {"dense-e": 10.0, twin_id("dense-e"): 10.0, "half-e": 5.0, "dense-o": 8.0, "same-o": 8.0}
    cells = [machine.cell(n, ms) for n, ms in names.items()]
    refs = {twin_id("dense-e"): "dense-e", "half-e": "dense-e", "same-o": "dense-o"}
    return run_rounds(cells, [SHAPE], rule, references=refs, reference_every=1, pairs=pairs)


def test_the_twin_contains_one_and_sets_the_floor_of_every_record():
    result = _rounds(3)
    twins = {"eager": twin_id("dense-e")}
    own = resolution_fields(result, twins, "eager", SHAPE)
    other = resolution_fields(result, twins, "onnxruntime", SHAPE)  # no twin there: the group's one twin
    assert own == other and own["aa_backend"] == "eager"
    assert own["aa_ratio_ci95_low"] <= 1.0 <= own["aa_ratio_ci95_high"] and not own["aa_significant"]
    twin = paired_ratio(result.blocks["dense-e"][SHAPE], result.blocks[twin_id("dense-e")][SHAPE])
    assert own["resolution_pct"] == pytest.approx(twin.half_width_pct) and 0 < own["resolution_pct"] < 10
    assert own["aa_ratio_ci_level"] == pytest.approx(twin.level) and twin.level >= 0.95
    half = paired_ratio(result.blocks["dense-e"][SHAPE], result.blocks["half-e"][SHAPE])
    assert abs(half.value - 1) * 100 > own["resolution_pct"] and half.p_value < 0.05 / 14  # 12 rounds: 2/4096


def test_a_lost_twin_leaves_no_floor_and_says_why():
    result = _rounds(4)
    result.blocks.pop(twin_id("dense-e"))
    result.lost[twin_id("dense-e")] = "cell process died (exit code 1)"
    fields = resolution_fields(result, {"eager": twin_id("dense-e")}, "eager", SHAPE)
    assert fields["resolution_pct"] is None and "cell process died" in fields["resolution_note"]
    assert resolution_fields(result, {}, "eager", SHAPE) == {}


def test_the_precision_target_counts_rounds_until_the_twin_resolves_too():
    rule = StopRule(min_rounds=4, min_iters=1, min_time_s=0, block_iters=2, target_ci_pct=4.0, max_rounds=60)
    result = _rounds(5, rule, pairs=[("dense-e", twin_id("dense-e")), ("dense-e", "half-e")])
    twin = paired_ratio(result.blocks["dense-e"][SHAPE], result.blocks[twin_id("dense-e")][SHAPE])
    assert result.stopped_by == "target_ci_pct" and result.rounds >= 6  # the order-statistic interval needs 6
    assert twin.mde_pct is not None and twin.mde_pct <= 4.0


@dataclass
class _Task:
    cell_id: str
    base: dict
    workdir: str = "/tmp/w"
    emit_prepared: bool = True
    extra: list = field(default_factory=list)


def test_one_twin_per_group_or_one_per_backend():
    tasks = [_Task(f"dense-{b}", {"variant": "dense", "backend": b}) for b in ("eager", "onnxruntime")]
    tasks.append(_Task("x-eager", {"variant": "x", "backend": "eager"}))
    one = aa_twins(tasks, "dense", "one")
    assert list(one) == ["eager"] and one["eager"].cell_id == twin_id("dense-eager")
    assert one["eager"].emit_prepared is False and one["eager"].workdir != tasks[0].workdir  # its own worker, no records
    assert one["eager"].base["aa_twin"] and twin_reference(one["eager"].cell_id) == "dense-eager"
    assert list(aa_twins(tasks, "dense", "all")) == ["eager", "onnxruntime"]
    assert aa_twins(tasks, "dense", "off") == {} and aa_twins(tasks, None, "one") == {}
