"""Run-to-run comparison: records of several runs joined cell by cell, with ratios and confidence intervals.

Cells join on (variant, task, backend, dtype, device kind, batch, seq, scenario); the device kind ("cpu",
"cuda") rather than its name, so that runs on different machines compare. The first run is the baseline; each
later run gets ratios to it. With several seeds in one run, a cell takes the record with the median value.

The interval of a latency ratio B/A (p50 over p50), with its coverage stated (`Ratio.level`):
- both records carry `latency_samples_ms`: each run's order-statistic interval of its median at sqrt(95 %),
  divided end to end; both cover with probability c_A * c_B >= 95 %, and then the ratio's does
  (bench.measure.stats.ratio_interval): distribution-free, like the paired intervals within a run;
- otherwise both carry an interval of their median: [B_low / A_high, B_high / A_low], which covers with at least
  the product of their levels (`latency_ms_ci_level`, 95 % where an older record does not say);
- otherwise no interval: the ratio is shown and never counts as a clear regression.
A slowdown beyond PCT is "statistically clear" only when the whole interval lies above 1 + PCT/100 and the
interval's coverage is at least 95 %: the gate rests on intervals of the same stated coverage as the Findings'
(the pytest plugin gates the same way). Each ratio also has its minimum detectable effect (`Ratio.mde_pct`).
A value that is not a finite number (null in the records; NaN or infinity in files from older versions) is no
value: its cell is listed as not compared, never shown as "nan" beside an interval or counted as compared.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from reports.load import Run

JoinKey = tuple[Any, ...]  # variant, task, backend, dtype, device kind, batch_size, seq_len, scenario
METRICS = {"latency": "latency_ms_p50", "throughput": "throughput_samples_per_s", "memory": "peak_memory_mb",
           "accuracy": "accuracy"}


GATE_LEVEL = 0.95


@dataclass(frozen=True)
class Ratio:
    value: float
    low: float | None
    high: float | None
    method: str  # "order statistics", "ci bounds" or "none"
    level: float | None = None  # the interval's coverage

    @property
    def mde_pct(self) -> float | None:
        """The smallest change this comparison could have shown, in %: the wider side of the interval around the
        ratio (log scale); None without an interval of at least GATE_LEVEL."""
        if self.low is None or self.high is None or not self.level or self.level < GATE_LEVEL or self.low <= 0:
            return None
        return 100 * math.expm1(max(math.log(self.value / self.low), math.log(self.high / self.value)))

    @property
    def gates(self) -> bool:
        """Whether this interval may fail a gate: it exists and covers at least GATE_LEVEL."""
        return self.low is not None and self.level is not None and self.level >= GATE_LEVEL - 1e-9


@dataclass(frozen=True)
class Row:
    key: JoinKey
    values: list[float]  # the metric in each run
    ratios: list[Ratio]  # run i / run 0 for every run after the first
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Missing:
    key: JoinKey
    states: list[str]  # per run: ok, failed, skipped or absent


@dataclass(frozen=True)
class Regression:
    row: Row
    run: int  # index of the slower run
    threshold: float

    def line(self, runs: list[Run]) -> str:
        variant, task, backend, dtype, device, batch, seq, _ = self.row.key
        ratio = self.row.ratios[self.run - 1]
        return (f"regression: {variant} {task} {backend} {dtype} {device} {batch}x{seq}: p50 "
                f"{self.row.values[0]:.2f} ms in {runs[0].run_id} -> {self.row.values[self.run]:.2f} ms in "
                f"{runs[self.run].run_id}, {ratio.value:.3f}x ({ratio.level:.1%} interval {ratio.low:.3f}-{ratio.high:.3f}, "
                f"{ratio.method}) beyond +{(self.threshold - 1) * 100:g}%")


@dataclass(frozen=True)
class Comparison:
    runs: list[Run]
    rows: list[Row]
    missing: list[Missing]

    def by_scenario(self, scenario: str) -> list[Row]:
        return [row for row in self.rows if row.key[-1] == scenario]


def join_key(record: dict[str, Any]) -> JoinKey:
    device = str(record.get("device") or "?").split(":")[0]  # cuda:1 and cuda are the same kind
    return (record.get("variant"), record.get("task"), record.get("backend"), record.get("dtype"), device,
            record.get("batch_size"), record.get("seq_len"), record.get("scenario"))


def compare_runs(runs: list[Run]) -> Comparison:
    cells = [_cells(run) for run in runs]
    states = [_states(run) for run in runs]
    keys = list(dict.fromkeys(key for run_cells in cells for key in run_cells))
    rows, missing = [], []
    for key in keys:
        if all(key in run_cells for run_cells in cells):
            records = [run_cells[key] for run_cells in cells]
            metric = METRICS[key[-1]]
            ratios = [_ratio(r, records[0], metric) for r in records[1:]]
            if key[-1] == "accuracy" or all(_finite(ratio.value) for ratio in ratios):  # accuracy: differences
                rows.append(Row(key, [r[metric] for r in records], ratios, records))
            else:  # a zero baseline: no ratio to show
                missing.append(Missing(key, ["no value" if not r[metric] else "ok" for r in records]))
        else:
            missing.append(Missing(key, [("ok" if key in c else s.get(key, "absent")) for c, s in zip(cells, states)]))
    return Comparison(runs, rows, missing)


def regressions(comparison: Comparison, pct: float) -> list[Regression]:
    """Latency cells where a later run is slower than the baseline beyond pct percent, with the whole CI above."""
    threshold = 1 + pct / 100
    return [Regression(row, i + 1, threshold) for row in comparison.by_scenario("latency")
            for i, ratio in enumerate(row.ratios) if ratio.gates and ratio.low > threshold]


def unclear(comparison: Comparison, pct: float) -> int:
    """Latency ratios beyond the threshold whose interval still reaches below it: shown, not failed on."""
    threshold = 1 + pct / 100
    return sum(1 for row in comparison.by_scenario("latency") for ratio in row.ratios
               if ratio.value > threshold and not (ratio.gates and ratio.low > threshold))


def compared_line(comparison: Comparison) -> str:
    """How many cells the runs share (and so were compared), and how many were not."""
    latency = sum(len(row.ratios) for row in comparison.by_scenario("latency"))
    return (f"{len(comparison.rows)} cells compared across {len(comparison.runs)} runs ({latency} latency ratios); "
            f"{len(comparison.missing)} cells without a counterpart in every run, not compared")


def no_shared_cell(comparison: Comparison) -> str:
    """Why a comparison has nothing to show: what each run holds, as a one-line error."""
    def holds(run: Run) -> str:
        cells = {(r.get("task"), r.get("scenario")) for r in run.records if r.get("status") == "ok"}
        tasks = sorted({str(t) for t, _ in cells})
        return f"{run.run_id} ({', '.join(tasks) or 'no measured cell'})"

    return (f"the runs share no measured cell, so nothing was compared: {'; '.join(holds(r) for r in comparison.runs)}; "
            "cells join on variant, task, backend, dtype, device, shape and scenario")


def gate_verdict(comparison: Comparison, pct: float) -> str:
    """One line for a CI log: how many clear regressions, out of how many ratios, and how many were not clear."""
    found = len(regressions(comparison, pct))
    compared = sum(len(row.ratios) for row in comparison.by_scenario("latency"))
    verdict = f"{found} clear latency regression(s) beyond +{pct:g}%" if found else \
        f"no latency regression beyond +{pct:g}% is statistically clear"
    ungated = sum(1 for row in comparison.by_scenario("latency") for ratio in row.ratios if not ratio.gates)
    without = (f"; {ungated} without an interval of {GATE_LEVEL:.0%} coverage, not gated (records without "
               "latency_samples_ms whose own intervals, divided, cover less)") if ungated else ""
    return f"{verdict} ({compared} ratios compared; {unclear(comparison, pct)} beyond +{pct:g}% but not clear{without})"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _ratio(record: dict[str, Any], baseline: dict[str, Any], metric: str) -> Ratio:
    value = record[metric] / baseline[metric] if baseline[metric] else float("inf")
    if metric != "latency_ms_p50":
        return Ratio(value, None, None, "none")
    samples = record.get("latency_samples_ms"), baseline.get("latency_samples_ms")
    if all(isinstance(s, list) and s and all(_finite(x) for x in s) for s in samples):
        from bench.measure.stats import ratio_interval  # numpy only; durations in any unit give the same ratio

        try:
            ratio, low, high, level = ratio_interval(samples[0], samples[1], GATE_LEVEL)
        except ValueError:  # a zero duration: no ratio
            ratio = low = high = level = float("nan")
        if all(_finite(x) for x in (ratio, low, high)):
            return Ratio(ratio, low, high, "order statistics", level)
    bounds = (record.get("latency_ms_ci95_low"), record.get("latency_ms_ci95_high"),
              baseline.get("latency_ms_ci95_low"), baseline.get("latency_ms_ci95_high"))
    if not all(_finite(b) for b in bounds) or not bounds[2] or not bounds[3]:
        return Ratio(value, None, None, "none")
    levels = [r.get("latency_ms_ci_level") for r in (record, baseline)]
    level = math.prod(x if _finite(x) else 0.95 for x in levels)
    return Ratio(value, bounds[0] / bounds[3], bounds[1] / bounds[2], "ci bounds", level)


def _cells(run: Run) -> dict[JoinKey, dict[str, Any]]:
    """ok records with their scenario's metric, one per join key: several seeds give the median record."""
    groups: dict[JoinKey, list[dict[str, Any]]] = defaultdict(list)
    for record in run.records:
        metric = METRICS.get(record.get("scenario"))  # type: ignore[arg-type]
        if record.get("status") == "ok" and metric and _finite(record.get(metric)):
            groups[join_key(record)].append(record)
    return {key: sorted(group, key=lambda r: r[METRICS[key[-1]]])[(len(group) - 1) // 2]
            for key, group in groups.items()}


def _states(run: Run) -> dict[JoinKey, str]:
    """Why a run has no value for a key: its cell failed or was skipped, or it was measured without the metric."""
    return {join_key(r): "no value" if r.get("status") == "ok" else str(r.get("status")) for r in run.records}
