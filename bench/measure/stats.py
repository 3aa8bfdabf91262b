"""Latency statistics built from raw timing samples (nanoseconds), and ratios between two sets of samples.

The timing helper produces integer nanoseconds; everything here turns them into the flat, unit-named
numbers a result record carries (``latency_ms_p50`` ...). Percentiles use numpy's default linear
interpolation (``np.percentile(..., method="linear")``), so p50 is the ordinary median. Confidence
intervals are percentile bootstraps with a fixed seed, so the same samples always give the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_NS_PER_MS = 1e6
_RESAMPLES = 2000
_SEED = 0
# Bootstrap index matrices are resamples x n; cap each chunk so 100k-sample runs stay at tens of MB.
_MAX_CHUNK_ELEMENTS = 4_000_000


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
    p90_ms: float
    p95_ms: float
    p99_ms: float
    cv: float  # std / mean
    ci95_low_ms: float  # bootstrap 95% CI of the median
    ci95_high_ms: float
    outliers: int  # outside Tukey fences: [Q1 - 1.5 IQR, Q3 + 1.5 IQR]
    total_s: float  # sum of samples: the measured time, excluding warm-up

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int] | np.ndarray) -> LatencyStats:
        """Build from raw per-iteration durations in nanoseconds; raises ValueError on empty input."""
        ns = _as_samples(samples_ns)
        x = ns / _NS_PER_MS
        p25, p50, p75, p90, p95, p99 = np.percentile(x, [25, 50, 75, 90, 95, 99])
        iqr = p75 - p25
        outliers = np.count_nonzero((x < p25 - 1.5 * iqr) | (x > p75 + 1.5 * iqr))
        ci_low, ci_high = np.percentile(
            _bootstrap_medians(x, _RESAMPLES, np.random.default_rng(_SEED)), [2.5, 97.5]
        )
        mean, std = float(x.mean()), float(x.std())
        return cls(
            count=int(x.size),
            mean_ms=mean,
            std_ms=std,
            min_ms=float(x.min()),
            max_ms=float(x.max()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p95_ms=float(p95),
            p99_ms=float(p99),
            # mean == 0 only when every sample is 0, and then there is no spread either.
            cv=std / mean if mean > 0 else 0.0,
            ci95_low_ms=float(ci_low),
            ci95_high_ms=float(ci_high),
            outliers=int(outliers),
            total_s=float(ns.sum()) / 1e9,
        )

    def to_record(self) -> dict[str, float | int]:
        """Flat result-record keys with units in their names (see DESIGN.md, "Result records")."""
        return {
            "latency_ms_p50": self.p50_ms,
            "latency_ms_p90": self.p90_ms,
            "latency_ms_p95": self.p95_ms,
            "latency_ms_p99": self.p99_ms,
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
