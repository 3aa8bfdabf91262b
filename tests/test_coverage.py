"""The interval of a paired ratio covers what it says: simulated runs with no effect (true per-round ratio median 1.0)
at the round counts a run uses, under three kinds of noise, for the order-statistic interval that the records carry
(bench.measure.stats.median_interval) and, as the control that shows the test can fail, for the percentile bootstrap
that they carried before.

Noise models of the per-round ratio, each symmetric around 1.0 on the log scale:
- normal: log ratio ~ N(0, 0.07);
- heavy-tailed: log ratio ~ 0.05 t(3 df);
- drifting: the AR(1) machine of tests/test_reference_blocks.py (log speed phi 0.9, step 0.05 per block, white 0.02
  per iteration, 2 iterations a block), with 8 blocks a round: the reference, then the cell, then six others, so
  consecutive rounds' ratios are correlated, as on a shared machine.

With 4,000 simulated runs a coverage of 96.9 % is known to +-0.3 % (one standard error), so ">= 94 %" is resolved by
ten standard errors, and the old estimator's 92-93 % by three. Everything is vectorised over runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.stats import median_interval, median_interval_indices

RUNS = 4000
ROUNDS = (6, 8, 24)


def _normal(rng: np.random.Generator, rounds: int) -> np.ndarray:
    return np.exp(rng.normal(0, 0.07, size=(RUNS, rounds)))


def _heavy(rng: np.random.Generator, rounds: int) -> np.ndarray:
    return np.exp(0.05 * rng.standard_t(3, size=(RUNS, rounds)))


def _drifting(rng: np.random.Generator, rounds: int, phi: float = 0.9, step: float = 0.05, white: float = 0.02,
              per_round: int = 8, iters: int = 2) -> np.ndarray:
    """Per-round ratio median(reference block) / median(cell block) of two identical cells on the AR(1) machine."""
    blocks = rounds * per_round
    level = np.zeros(RUNS)
    levels = np.empty((RUNS, blocks))
    for t in range(blocks):  # a loop over time, vectorised over runs
        level = phi * level + rng.normal(0, step, size=RUNS)
        levels[:, t] = level
    medians = np.exp(levels)[..., None] * np.exp(rng.normal(0, white, size=(RUNS, blocks, iters)))
    medians = np.median(medians, axis=2).reshape(RUNS, rounds, per_round)
    return medians[:, :, 0] / medians[:, :, 1]


NOISE = {"normal": _normal, "heavy-tailed t3": _heavy, "drifting AR(1)": _drifting}


def order_statistic_coverage(ratios: np.ndarray) -> float:
    """Share of runs whose median_interval (applied row by row through its indices) contains 1.0."""
    low, high, _ = median_interval_indices(ratios.shape[1])
    ordered = np.sort(ratios, axis=1)
    return float(np.mean((ordered[:, low] <= 1.0) & (1.0 <= ordered[:, high])))


def bootstrap_coverage(ratios: np.ndarray, resamples: int = 500, seed: int = 0) -> float:
    """The estimator the records used before: percentile bootstrap (2.5, 97.5) of the median over rounds."""
    rng = np.random.default_rng(seed)
    runs, rounds = ratios.shape
    covered = 0
    for start in range(0, runs, 500):  # chunks keep the [runs, resamples, rounds] array at tens of MB
        chunk = ratios[start:start + 500]
        idx = rng.integers(0, rounds, size=(chunk.shape[0], resamples, rounds))
        medians = np.median(np.take_along_axis(chunk[:, None, :], idx, axis=2), axis=2)
        low, high = np.percentile(medians, [2.5, 97.5], axis=1)
        covered += int(np.count_nonzero((low <= 1.0) & (1.0 <= high)))
    return covered / runs


def coverage_table(seed: int = 0) -> dict[tuple[str, int], tuple[float, float]]:
    """(noise, rounds) -> (order-statistic coverage, bootstrap coverage): the closing note's table."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, draw in NOISE.items():
        for rounds in ROUNDS:
            ratios = draw(rng, rounds)
            out[(name, rounds)] = order_statistic_coverage(ratios), bootstrap_coverage(ratios)
    return out


@pytest.mark.parametrize("rounds", ROUNDS)
@pytest.mark.parametrize("noise", list(NOISE))
def test_the_ratio_interval_covers_at_least_94_percent(noise, rounds):
    ratios = NOISE[noise](np.random.default_rng(rounds), rounds)
    assert order_statistic_coverage(ratios) >= 0.94


def test_the_vectorised_indices_are_the_interval_the_records_carry():
    ratios = _heavy(np.random.default_rng(3), 8)[:50]
    low, high, level = median_interval_indices(8)
    for row in ratios:
        interval = median_interval(row)
        assert (interval.low, interval.high, interval.level) == (np.sort(row)[low], np.sort(row)[high], level)


def test_the_old_bootstrap_fails_this_test():
    """The simulation resolves the difference: the percentile bootstrap falls below 94 % where the order-statistic
    interval holds (normal noise at 8 rounds: about 92.5 % in the issue's simulation)."""
    ratios = _normal(np.random.default_rng(8), 8)
    assert bootstrap_coverage(ratios) < 0.94 <= order_statistic_coverage(ratios)


def test_stated_levels_are_exact_binomial_coverages():
    assert median_interval_indices(6) == (0, 5, pytest.approx(62 / 64))  # [min, max], 96.9 %
    low, high, level = median_interval_indices(24)
    assert (low, high) == (6, 17) and level == pytest.approx(0.9773, abs=1e-4)
    assert median_interval(np.arange(5.0)).level == pytest.approx(30 / 32)  # too few for 95 %: said, not assumed
