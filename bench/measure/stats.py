"""Latency statistics built from raw timing samples (nanoseconds), and ratios between two sets of samples.

The timing helper produces integer nanoseconds; everything here turns them into the flat, unit-named
numbers a result record carries (``latency_ms_p50`` ...). Percentiles use numpy's default linear
interpolation (``np.percentile(..., method="linear")``), so p50 is the ordinary median. The median's
confidence interval is a percentile bootstrap with a fixed seed, so the same samples always give the same record.

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
_RESAMPLES = 2000
_SEED = 0
# Bootstrap index matrices are resamples x n; cap each chunk so 100k-sample runs stay at tens of MB.
_MAX_CHUNK_ELEMENTS = 4_000_000
TAIL_MIN_SAMPLES = {90: 64, 95: 130, 99: 662}


def _as_samples(samples_ns: Sequence[int] | np.ndarray, name: str = "samples_ns") -> np.ndarray:
    x = np.asarray(samples_ns, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of durations, got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError(f"{name}: durations must be finite and >= 0 ns")
    return x


def _bootstrap_medians(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `resamples` resamples (with replacement) of x, vectorised in chunks of rows."""
    rows_per_chunk = max(1, _MAX_CHUNK_ELEMENTS // x.size)
    medians = np.empty(resamples)
    for start in range(0, resamples, rows_per_chunk):
        stop = min(start + rows_per_chunk, resamples)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))  # [rows, n]
        medians[start:stop] = np.median(x[idx], axis=1)
    return medians


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
    ci95_low_ms: float  # bootstrap 95% CI of the median
    ci95_high_ms: float
    outliers: int  # outside Tukey fences: [Q1 - 1.5 IQR, Q3 + 1.5 IQR]
    total_s: float  # sum of samples: the measured time, excluding warm-up
    tails: dict[int, Tail]  # 90, 95, 99 -> the percentile, its CI, or why it is not reported

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
        ci_low, ci_high = np.percentile(
            _bootstrap_medians(x, _RESAMPLES, np.random.default_rng(_SEED)), [2.5, 97.5]
        )
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
            ci95_low_ms=float(ci_low),
            ci95_high_ms=float(ci_high),
            outliers=int(outliers),
            total_s=float(ns.sum()) / 1e9,
            tails={q: Tail.of(ordered, q) for q in TAIL_MIN_SAMPLES},
        )

    def to_record(self) -> dict[str, float | int | str | None]:
        """Flat result-record keys with units in their names (see DESIGN.md, "Result records")."""
        record: dict[str, float | int | str | None] = {
            "latency_ms_p50": self.p50_ms,
            "latency_ms_mean": self.mean_ms,
            "latency_ms_std": self.std_ms,
            "latency_ms_min": self.min_ms,
            "latency_ms_max": self.max_ms,
            "latency_ms_ci95_low": self.ci95_low_ms,
            "latency_ms_ci95_high": self.ci95_high_ms,
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
    k = np.arange(n + 1)
    log_pmf = (np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
               + k * math.log(quantile) + (n - k) * math.log1p(-quantile))
    cdf = np.cumsum(np.exp(log_pmf - log_pmf.max()))
    cdf /= cdf[-1]  # P(B <= k)
    alpha = (1 - level) / 2
    below = np.nonzero(cdf <= alpha)[0]  # P(B <= l) <= alpha: the quantile lies above X(l) (0-based)
    above = np.nonzero(cdf >= 1 - alpha)[0]  # P(B <= u) >= 1 - alpha: it lies at or below X(u)
    low = int(below[-1]) if below.size else None
    high = int(above[0]) if above.size and above[0] < n else None
    return low, high


def ratio_ci95(
    a_ns: Sequence[int] | np.ndarray,
    b_ns: Sequence[int] | np.ndarray,
    *,
    resamples: int = _RESAMPLES,
    seed: int = _SEED,
) -> tuple[float, float, float]:
    """median(a) / median(b) with a percentile-bootstrap 95% CI, resampling a and b independently.

    Returns (ratio, ci95_low, ci95_high). With a = variant and b = baseline, a ratio above 1 means the
    variant is slower; a CI that excludes 1 means the difference is beyond resampling noise.
    """
    a, b = _as_samples(a_ns, "a_ns"), _as_samples(b_ns, "b_ns")
    rng = np.random.default_rng(seed)
    medians_a = _bootstrap_medians(a, resamples, rng)
    medians_b = _bootstrap_medians(b, resamples, rng)
    if np.any(medians_b == 0):
        raise ValueError("b_ns: median is 0 ns in some resample; a ratio against it is undefined")
    low, high = np.percentile(medians_a / medians_b, [2.5, 97.5])
    return float(np.median(a) / np.median(b)), float(low), float(high)
