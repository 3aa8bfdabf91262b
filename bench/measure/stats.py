"""Latency statistics built from raw timing samples (nanoseconds), and ratios between two sets of samples.

The timing helper produces integer nanoseconds; everything here turns them into the flat, unit-named
numbers a result record carries (``latency_ms_p50`` ...). Percentiles use numpy's default linear
interpolation (``np.percentile(..., method="linear")``), so p50 is the ordinary median.

Intervals of a median are distribution-free: order statistics of the sample, chosen from the binomial law of how
many samples fall below the true median (`median_interval`), with their exact coverage (`Interval.level`, at
least the 95 % asked for; 96.9 % for [min, max] at 6 values). A percentile bootstrap of a median covers less than it
says at the round counts a run uses (92-93 % at 6-14; tests/test_coverage.py measures both). The sign test
(`sign_test_p`) is the test this interval inverts: where [low, high] excludes a value, its p-value is small.

Tail percentiles are reported only from enough samples to mean something: a p99 from 20 samples is the maximum.
The minimum counts are MLPerf LoadGen's early-stopping minimums (p90: 64, p99: 662; p95: 130 by the same rule,
the smallest n with q**n <= 0.0013, i.e. all n samples below the percentile is a 3-sigma event). Below them the
value is None and a note says how many samples it needs. Tails carry distribution-free order-statistic 95% CIs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_NS_PER_MS = 1e6
TAIL_MIN_SAMPLES = {90: 64, 95: 130, 99: 662}


def _as_samples(samples_ns: Sequence[int] | np.ndarray, name: str = "samples_ns") -> np.ndarray:
    x = np.asarray(samples_ns, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of durations, got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError(f"{name}: durations must be finite and >= 0 ns")
    return x


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one measured cell's per-iteration latencies, in milliseconds."""

    count: int
    mean_ms: float
    std_ms: float  # population std (ddof=0): 0 for a single sample, not NaN
    min_ms: float
    max_ms: float
    p50_ms: float
    cv: float  # std / mean
    ci95_low_ms: float  # distribution-free interval of the median (order statistics), coverage ci_level
    ci95_high_ms: float
    outliers: int  # outside Tukey fences: [Q1 - 1.5 IQR, Q3 + 1.5 IQR]
    total_s: float  # sum of samples: the measured time, excluding warm-up
    tails: dict[int, Tail]  # 90, 95, 99 -> the percentile, its CI, or why it is not reported
    ci_level: float = 0.95  # the exact coverage of [ci95_low_ms, ci95_high_ms] (>= 0.95 from 6 samples on)

    @property
    def p90_ms(self) -> float | None:
        return self.tails[90].value_ms

    @property
    def p99_ms(self) -> float | None:
        return self.tails[99].value_ms

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int] | np.ndarray) -> LatencyStats:
        """Build from raw per-iteration durations in nanoseconds; raises ValueError on empty input."""
        ns = _as_samples(samples_ns)
        x = ns / _NS_PER_MS
        p25, p50, p75 = np.percentile(x, [25, 50, 75])
        iqr = p75 - p25
        outliers = np.count_nonzero((x < p25 - 1.5 * iqr) | (x > p75 + 1.5 * iqr))
        median = median_interval(x)
        mean, std = float(x.mean()), float(x.std())
        ordered = np.sort(x)
        return cls(
            count=int(x.size),
            mean_ms=mean,
            std_ms=std,
            min_ms=float(x.min()),
            max_ms=float(x.max()),
            p50_ms=float(p50),
            # mean == 0 only when every sample is 0, and then there is no spread either.
            cv=std / mean if mean > 0 else 0.0,
            ci95_low_ms=median.low,
            ci95_high_ms=median.high,
            outliers=int(outliers),
            total_s=float(ns.sum()) / 1e9,
            tails={q: Tail.of(ordered, q) for q in TAIL_MIN_SAMPLES},
            ci_level=median.level,
        )

    def to_record(self) -> dict[str, float | int | str | None]:
        """Flat result-record keys with units in their names (see docs/records.md)."""
        record: dict[str, float | int | str | None] = {
            "latency_ms_p50": self.p50_ms,
            "latency_ms_mean": self.mean_ms,
            "latency_ms_std": self.std_ms,
            "latency_ms_min": self.min_ms,
            "latency_ms_max": self.max_ms,
            "latency_ms_ci95_low": self.ci95_low_ms,
            "latency_ms_ci95_high": self.ci95_high_ms,
            "latency_ms_ci_level": self.ci_level,
            "latency_cv": self.cv,
            "latency_outliers": self.outliers,
            "latency_count": self.count,
            "measured_s": self.total_s,
        }
        for q, tail in self.tails.items():
            record[f"latency_ms_p{q}"] = tail.value_ms
            record[f"latency_ms_p{q}_ci95_low"] = tail.low_ms
            record[f"latency_ms_p{q}_ci95_high"] = tail.high_ms
            if tail.note:
                record[f"latency_ms_p{q}_note"] = tail.note
        return record


@dataclass(frozen=True)
class Tail:
    """One tail percentile: its value with an order-statistic 95% CI, or None and why."""

    value_ms: float | None
    low_ms: float | None = None
    high_ms: float | None = None
    note: str | None = None

    @classmethod
    def of(cls, ordered_ms: np.ndarray, q: int) -> Tail:
        n, needed = ordered_ms.size, TAIL_MIN_SAMPLES[q]
        if n < needed:
            return cls(None, note=f"p{q} needs at least {needed} samples, have {n}")
        value = float(np.percentile(ordered_ms, q))
        low, high = order_statistic_ci(n, q / 100)
        return cls(value, float(ordered_ms[low]) if low is not None else None,
                   float(ordered_ms[high]) if high is not None else None)


def order_statistic_ci(n: int, quantile: float, level: float = 0.95) -> tuple[int | None, int | None]:
    """0-based indices (l, u) of the sorted sample whose values bound the `quantile` with at least `level`
    coverage, distribution-free: the count B of samples below the true quantile is Binomial(n, quantile), and
    [X(l), X(u)] covers it when l < B <= u (0-based), each side missing with probability <= (1 - level) / 2.
    An index is None when n is too small for that side to exist."""
    cdf = _binomial_cdf(n, quantile)  # P(B <= k)
    alpha = (1 - level) / 2
    below = np.nonzero(cdf <= alpha)[0]  # P(B <= l) <= alpha: the quantile lies above X(l) (0-based)
    above = np.nonzero(cdf >= 1 - alpha)[0]  # P(B <= u) >= 1 - alpha: it lies at or below X(u)
    low = int(below[-1]) if below.size else None
    high = int(above[0]) if above.size and above[0] < n else None
    return low, high


def _binomial_cdf(n: int, p: float = 0.5) -> np.ndarray:
    """P(B <= k) for k = 0..n, B ~ Binomial(n, p), from log-space terms (exact enough at thousands of samples)."""
    k = np.arange(n + 1)
    log_pmf = (np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
               + k * math.log(p) + (n - k) * math.log1p(-p))
    cdf = np.cumsum(np.exp(log_pmf - log_pmf.max()))
    return np.minimum(cdf / cdf[-1], 1.0)


@dataclass(frozen=True)
class Interval:
    """[low, high] around a median, with the probability that such an interval covers the true median."""

    low: float
    high: float
    level: float  # exact coverage for independent, identically distributed values (any continuous law)


def median_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """The order-statistic interval of the median: the narrowest pair [X(l), X(u)] symmetric in its tail
    probabilities whose coverage is at least `level`, with that exact coverage P(l < B <= u) for B ~ Binomial(n, 1/2).
    Below the count that can reach `level` (6 values for 95 %), [min, max] with its lower coverage, said in
    `level` (93.8 % at 5, 87.5 % at 4): a claim reads the level, it never assumes it."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n == 0:
        raise ValueError("median_interval: no values")
    if n == 1:
        return Interval(float(x[0]), float(x[0]), 0.0)
    low, high, coverage = median_interval_indices(n, level)
    return Interval(float(x[low]), float(x[high]), coverage)


def median_interval_indices(n: int, level: float = 0.95) -> tuple[int, int, float]:
    """0-based (l, u) of `median_interval` for n values and its exact coverage: for vectorised use on many samples."""
    low, high = order_statistic_ci(n, 0.5, level)
    low, high = 0 if low is None else low, n - 1 if high is None else high
    cdf = _binomial_cdf(n)
    return low, high, float(cdf[high] - cdf[low])


def sign_test_p(values: Sequence[float] | np.ndarray, null: float = 1.0) -> float:
    """Two-sided exact sign test of median == null: twice the smaller binomial tail of the count above it (values
    equal to null carry no sign and are left out); 1.0 with no value left. Per-round ratios are the values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[x != null]
    n = x.size
    if n == 0:
        return 1.0
    above = int(np.count_nonzero(x > null))
    cdf = _binomial_cdf(n)
    lower = cdf[above]  # P(B <= above)
    upper = 1.0 - (cdf[above - 1] if above > 0 else 0.0)  # P(B >= above)
    return float(min(1.0, 2 * min(lower, upper)))


def ratio_interval(
    a_ns: Sequence[int] | np.ndarray,
    b_ns: Sequence[int] | np.ndarray,
    level: float = 0.95,
) -> tuple[float, float, float, float]:
    """median(a) / median(b) of two independent samples (two runs of one cell), with a distribution-free interval:
    each median's order-statistic interval at sqrt(level), divided end to end. Both cover with probability c_a * c_b
    >= level, and then the ratio's interval covers too, so that product is the stated coverage.

    Returns (ratio, low, high, coverage). With a = variant and b = baseline, a ratio above 1 means the variant is
    slower; an interval that excludes 1 means the difference is beyond the two samples' spread.
    """
    a, b = _as_samples(a_ns, "a_ns"), _as_samples(b_ns, "b_ns")
    if np.median(b) == 0 or np.min(b) == 0:
        raise ValueError("b_ns: a duration of 0 ns in the baseline; a ratio against it is undefined")
    each = math.sqrt(level)
    ia, ib = median_interval(a, each), median_interval(b, each)
    return float(np.median(a) / np.median(b)), ia.low / ib.high, ia.high / ib.low, ia.level * ib.level
