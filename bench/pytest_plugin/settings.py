"""The plugin's options (--xglm-bench-<name> or its environment variable), read and checked once at start-up, and
the regression gate against a baseline session's latency samples."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# --xglm-bench-<name>: (environment variable, default, help). Defaults suit CI on shared CPUs; a dedicated
# runner asks for more rounds.
OPTIONS: dict[str, tuple[str, str, str]] = {
    "rounds": ("XGLM_BENCH_ROUNDS", "10", "timed rounds per benchmark"),
    "warmup": ("XGLM_BENCH_WARMUP", "2", "untimed rounds before timing (at least 1: compile recompiles at a new shape)"),
    "device": ("XGLM_BENCH_DEVICE", "cpu", "device of runners that name none: cpu, cuda or cuda:N"),
    "dtype": ("XGLM_BENCH_DTYPE", "fp32", "dtype of runners that name none: fp32, tf32, fp16 or bf16"),
    "threads": ("XGLM_BENCH_THREADS", "0", "torch and ORT intra-op threads of runners that name none; 0: physical cores"),
    "baseline": ("XGLM_BENCH_BASELINE", "", "a pytest-benchmark JSON saved before (--benchmark-json/--benchmark-save) "
                                            "whose latency_samples_ms the regression gate compares with"),
    "fail-on-regression": ("XGLM_BENCH_FAIL_ON_REGRESSION", "", "fail a benchmark slower than the baseline by more "
                           "than PCT %, with the whole >= 95 % interval of the ratio above it (as bench compare)"),
}
DEVICES = ("cpu", "cuda")  # and cuda:N
DTYPES = ("fp32", "tf32", "fp16", "bf16")


@dataclass(frozen=True)
class Settings:
    rounds: int
    warmup_rounds: int
    device: str
    dtype: str
    threads: int
    baseline: dict[str, dict[str, Any]] | None = None  # benchmark fullname -> its extra_info (latency_samples_ms, threads)
    fail_on_regression: float | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        def value(name: str) -> str:
            env, default, _ = OPTIONS[name]
            return config.getoption(f"--xglm-bench-{name}") or os.environ.get(env) or default

        rounds, warmup = _count(value("rounds"), "rounds", 1), _count(value("warmup"), "warmup", 1)
        threads = _count(value("threads"), "threads", 0) or physical_cores()
        device, dtype = value("device"), value("dtype")
        if not known_device(device) or dtype not in DTYPES:
            raise pytest.UsageError(
                f"--xglm-bench-device/--xglm-bench-dtype: allowed {'|'.join(DEVICES)} and {'|'.join(DTYPES)}, "
                f"got {device!r} and {dtype!r}"
            )
        gate = value("fail-on-regression").strip()
        try:
            pct = float(gate) if gate else None
        except ValueError:
            pct = -1.0
        if pct is not None and pct < 0:
            raise pytest.UsageError(f"--xglm-bench-fail-on-regression: a percentage >= 0, got {gate!r}")
        baseline = _baseline(value("baseline")) if value("baseline") else None
        if pct is not None and baseline is None:
            raise pytest.UsageError("--xglm-bench-fail-on-regression needs --xglm-bench-baseline FILE.json "
                                    "(a pytest-benchmark JSON of an earlier session)")
        return cls(rounds, warmup, device, dtype, threads, baseline, pct)


def _baseline(path: str) -> dict[str, dict[str, Any]]:
    """fullname -> the extra_info (latency_samples_ms, threads, ...) of each benchmark in a pytest-benchmark JSON
    file that recorded its samples."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--xglm-bench-baseline {path}: cannot read it as JSON ({exc})") from None
    return {b.get("fullname") or b.get("name"): b["extra_info"]
            for b in data.get("benchmarks", []) if (b.get("extra_info") or {}).get("latency_samples_ms")}


def regression_line(name: str, samples_ms: list[float], baseline_ms: list[float], pct: float) -> str | None:
    """One line when `samples_ms` is slower than `baseline_ms` by more than pct % with the whole >= 95 %
    order-statistic interval of the ratio of medians above 1 + pct/100 (bench.measure.stats.ratio_interval, the
    interval `bench compare --fail-on-regression` gates on); None otherwise."""
    from bench.measure.stats import ratio_interval

    ratio, low, high, level = ratio_interval(samples_ms, baseline_ms)
    if level < 0.95 or low <= 1 + pct / 100:
        return None
    return (f"regression: {name}: {ratio:.3f}x the baseline's median latency ({level:.1%} interval {low:.3f}-"
            f"{high:.3f}, order statistics) beyond +{pct:g}%")


def _count(text: str, name: str, minimum: int) -> int:
    count = int(text) if text.strip().lstrip("-").isdigit() else minimum - 1
    if count < minimum:
        raise pytest.UsageError(f"--xglm-bench-{name} ({OPTIONS[name][0]}): an integer >= {minimum}, got {text!r}")
    return count


def known_device(device: str) -> bool:
    kind, colon, index = device.partition(":")
    return kind in DEVICES and (not colon or kind == "cuda" and index.isdigit())


def physical_cores() -> int:
    import psutil
    return psutil.cpu_count(logical=False) or 1
