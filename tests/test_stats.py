"""LatencyStats and ratio_interval: golden numbers, numpy agreement, order-statistic intervals and their levels."""

import json

import numpy as np
import pytest

from bench.measure.stats import LatencyStats, order_statistic_ci, ratio_interval, sign_test_p

MS = 1_000_000  # ns per ms


def test_percentiles_and_moments_match_numpy_on_1_to_100_ms():
    ms = np.arange(1, 101, dtype=np.float64)
    s = LatencyStats.from_ns((ms * MS).astype(np.int64))
    assert s.count == 100
    assert (s.p50_ms, s.p90_ms) == tuple(np.percentile(ms, [50, 90]))
    assert s.p99_ms is None and s.tails[95].value_ms is None  # 100 samples: too few for p95 and p99
    assert s.p50_ms == 50.5  # linear interpolation: between the 50th and 51st sample
    assert (s.mean_ms, s.std_ms, s.min_ms, s.max_ms) == (50.5, np.std(ms), 1.0, 100.0)
    assert s.cv == s.std_ms / s.mean_ms
    assert s.total_s == 5.05
    assert s.outliers == 0


def test_ci_contains_median_and_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    few = LatencyStats.from_ns(rng.lognormal(np.log(5 * MS), 0.2, size=50))
    many = LatencyStats.from_ns(rng.lognormal(np.log(5 * MS), 0.2, size=5000))
    for s in (few, many):
        assert s.ci95_low_ms < s.p50_ms < s.ci95_high_ms
    assert many.ci95_high_ms - many.ci95_low_ms < (few.ci95_high_ms - few.ci95_low_ms) / 4


def test_the_median_interval_is_two_order_statistics_with_its_exact_level():
    samples = np.random.default_rng(2).integers(1 * MS, 3 * MS, size=2500)
    s = LatencyStats.from_ns(samples)
    assert s == LatencyStats.from_ns(samples.tolist())
    ordered = np.sort(samples) / MS
    assert s.ci95_low_ms in ordered and s.ci95_high_ms in ordered
    assert 0.95 <= s.ci_level < 0.96 and s.to_record()["latency_ms_ci_level"] == s.ci_level


@pytest.mark.parametrize("n", [1, 20])
def test_constant_samples_have_no_spread_and_a_degenerate_ci(n):
    s = LatencyStats.from_ns([2 * MS] * n)
    assert (s.std_ms, s.cv, s.outliers) == (0.0, 0.0, 0)
    assert (s.ci95_low_ms, s.p50_ms, s.ci95_high_ms) == (2.0, 2.0, 2.0)


def test_outliers_use_tukey_fences():
    # Sorted: 1, 20..28, 100. Q1 = 21.5, Q3 = 26.5, IQR = 5, fences 14 and 34: 1 and 100 are out.
    ms = [20, 21, 22, 23, 24, 25, 26, 27, 28, 1, 100]
    assert LatencyStats.from_ns([m * MS for m in ms]).outliers == 2


def test_to_record_keys_units_and_exact_ns_to_ms():
    record = LatencyStats.from_ns([1_500_000, 2_500_000]).to_record()
    tails = {f"latency_ms_p{q}{suffix}" for q in (90, 95, 99) for suffix in ("", "_ci95_low", "_ci95_high", "_note")}
    assert set(record) == {
        "latency_ms_p50", "latency_ms_mean", "latency_ms_std", "latency_ms_min", "latency_ms_max",
        "latency_ms_ci95_low", "latency_ms_ci95_high", "latency_ms_ci_level", "latency_cv", "latency_outliers", "latency_count",
        "measured_s",
    } | tails
    assert record["latency_ms_p99"] is None and record["latency_ms_p99_note"] == "p99 needs at least 662 samples, have 2"
    assert record["latency_ms_min"] == 1.5
    assert record["latency_ms_max"] == 2.5
    assert record["latency_ms_mean"] == record["latency_ms_p50"] == 2.0
    assert record["latency_ms_std"] == 0.5
    assert record["latency_cv"] == 0.25
    assert record["latency_count"] == 2 and type(record["latency_count"]) is int
    assert type(record["latency_outliers"]) is int
    assert record["measured_s"] == 0.004
    assert json.loads(json.dumps(record)) == record


@pytest.mark.parametrize("bad", [[], np.array([]), [[1, 2]], [1, -5], [1.0, float("nan")]])
def test_invalid_samples_raise(bad):
    with pytest.raises(ValueError):
        LatencyStats.from_ns(bad)


def test_ratio_of_identical_distributions_contains_one():
    rng = np.random.default_rng(3)
    a, b = (rng.lognormal(np.log(4 * MS), 0.1, size=300) for _ in range(2))
    ratio, low, high, level = ratio_interval(a, b)
    assert low <= ratio <= high
    assert low < 1.0 < high
    assert 0.95 <= level < 1.0  # the product of the two medians' exact coverages
    assert ratio_interval(a, a)[0] == 1.0


def test_ratio_of_2x_slower_is_about_2_and_excludes_one():
    rng = np.random.default_rng(4)
    base = rng.lognormal(np.log(4 * MS), 0.1, size=300)
    slow = 2 * rng.lognormal(np.log(4 * MS), 0.1, size=300)
    ratio, low, high, _ = ratio_interval(slow, base)
    assert ratio == pytest.approx(2.0, rel=0.05)
    assert 1.0 < low <= ratio <= high


def test_ratio_rejects_empty_and_zero_baseline():
    with pytest.raises(ValueError):
        ratio_interval([], [1, 2])
    with pytest.raises(ValueError):
        ratio_interval([1, 2], [0, 0, 0])


def test_sign_test_is_exact_and_two_sided():
    assert sign_test_p([1.1] * 6) == pytest.approx(2 / 64)  # all six above 1.0: the smallest p six rounds allow
    assert sign_test_p([0.9] * 10) == pytest.approx(2 / 1024)
    assert sign_test_p([1.1] * 9 + [0.9]) == pytest.approx(2 * 11 / 1024)
    assert sign_test_p([1.1, 0.9] * 4) == 1.0
    assert sign_test_p([1.0, 1.0]) == 1.0  # no signs


@pytest.mark.parametrize("q, needed", [(90, 64), (95, 130), (99, 662)])
def test_tails_need_loadgen_minimum_counts(q, needed):
    """Below the minimum a tail is null with a note (a p99 of 20 samples is their maximum); from it on, the value
    with an order-statistic CI that brackets it."""
    ms = np.random.default_rng(q).lognormal(np.log(5), 0.3, size=needed)
    few = LatencyStats.from_ns(ms[:-1] * MS).tails[q]
    assert few.value_ms is None and few.note == f"p{q} needs at least {needed} samples, have {needed - 1}"
    enough = LatencyStats.from_ns(ms * MS).tails[q]
    assert enough.value_ms == pytest.approx(np.percentile(ms, q)) and enough.note is None
    assert enough.low_ms <= enough.value_ms <= (enough.high_ms or np.inf)


@pytest.mark.parametrize("n, q", [(64, 0.9), (662, 0.99), (200, 0.5)])
def test_order_statistic_ci_covers_the_quantile_95pct_of_the_time(n, q):
    """Coverage by simulation on exponential samples, whose q-quantile is -ln(1 - q)."""
    low, high = order_statistic_ci(n, q)
    rng = np.random.default_rng(0)
    draws = np.sort(rng.exponential(size=(3000, n)), axis=1)
    truth = -np.log(1 - q)
    covered = (draws[:, low] < truth) & (truth <= (draws[:, high] if high is not None else np.inf))
    assert 0.95 <= covered.mean() <= 0.99


def test_order_statistic_ci_bounds_the_binomial_exactly():
    # n = 20, median: the classic interval is [X(6), X(15)] in 1-based order statistics, coverage 95.9%.
    assert order_statistic_ci(20, 0.5) == (5, 14)
    assert order_statistic_ci(10, 0.99) == (8, None)  # a lower bound exists, an upper one needs more samples
