"""From flat records to the cells the views and plots show: one value per (row, shape), seeds aggregated.

A row is (task, variant, backend, dtype, device); a shape is (batch_size, seq_len). Several seeds of one
variant give several records per cell: timings take the record with the median p50 (a real measurement,
with its own CI, rather than an average of medians); accuracies become mean ± sample std over seeds.
Every key may be missing or null; what cannot be computed is None, never 0.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
RowKey = tuple[Any, Any, Any, Any, Any]  # task, variant, backend, dtype, device
Shape = tuple[Any, Any]  # batch_size, seq_len
CellKey = tuple[RowKey, Shape]


def ok(records: list[Record], scenario: str) -> list[Record]:
    return [r for r in records if r.get("scenario") == scenario and r.get("status") == "ok"]


def row_key(record: Record) -> RowKey:
    return tuple(record.get(k) for k in ("task", "variant", "backend", "dtype", "device"))  # type: ignore[return-value]


def shape_of(record: Record) -> Shape:
    return record.get("batch_size"), record.get("seq_len")


def shape_label(shape: Shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def identities(records: list[Record]) -> dict[RowKey, Record]:
    """The first record of each row, preferring ok ones: where method, sparsity, shares and the like come from."""
    out: dict[RowKey, Record] = {}
    for record in sorted(records, key=lambda r: r.get("status") != "ok"):
        out.setdefault(row_key(record), record)
    return out


def ordered_rows(records: list[Record]) -> list[RowKey]:
    """Rows in the order the sweep wrote them (dense first, then the config's order), grouped by task."""
    rows = list(dict.fromkeys(row_key(r) for r in records))
    tasks = list(dict.fromkeys(key[0] for key in rows))
    return sorted(rows, key=lambda key: tasks.index(key[0]))


def masked_dense_control(record: Record) -> bool:
    """A sparse variant whose zeros ran through dense kernels (`speedup_mechanism` none): it should time as dense,
    so a ratio away from 1.0 is noise or a backend's bias. Its kernel cells (`@csr`, `@bsr`) are not controls."""
    return bool(record.get("sparsity")) and record.get("speedup_mechanism") == "none"


def per_cell(records: list[Record], scenario: str, metric: str) -> dict[CellKey, Record]:
    """One ok record per (row, shape) that has `metric`; with several seeds, the one with the median value."""
    groups: dict[CellKey, list[Record]] = defaultdict(list)
    for record in ok(records, scenario):
        if isinstance(record.get(metric), (int, float)):
            groups[(row_key(record), shape_of(record))].append(record)
    return {key: sorted(group, key=lambda r: r[metric])[(len(group) - 1) // 2] for key, group in groups.items()}


def reference_shape(cells: dict[CellKey, Record], task: Any) -> Shape | None:
    """The shape measured for the most rows of a task (ties: the largest), used where one shape must stand for all."""
    counts = Counter(shape for (key, shape) in cells if key[0] == task)
    if not counts:
        return None
    return max(counts, key=lambda s: (counts[s], s[0] or 0, s[1] or 0))


def is_dense_reference(record: Record) -> bool:
    """A dense variant as it is (not a precision cell of one): what speedups vs dense refer to."""
    return record.get("method") == "dense" and not record.get("quantization")


def dense_variants(records: list[Record]) -> dict[tuple, Any]:
    """(task, backend, dtype, device) -> the dense variant that speedups refer to: the first one recorded."""
    out: dict[tuple, Any] = {}
    for record in records:
        if is_dense_reference(record):
            task, variant, backend, dtype, device = row_key(record)
            out.setdefault((task, backend, dtype, device), variant)
    return out


def dense_key(key: RowKey, dense: dict[tuple, Any]) -> RowKey | None:
    task, _, backend, dtype, device = key
    variant = dense.get((task, backend, dtype, device))
    return None if variant is None else (task, variant, backend, dtype, device)


@dataclass(frozen=True)
class Speedup:
    value: float
    low: float | None
    high: float | None

    @property
    def excludes_one(self) -> bool:
        return self.low is not None and self.high is not None and not self.low <= 1.0 <= self.high

    def bounds_text(self) -> str:
        """'0.96–0.98': two decimals, three where an interval that excludes 1.0 would print a bound as 1.00."""
        if self.low is None or self.high is None:
            return ""
        digits = 3 if self.excludes_one and "1.00" in (f"{self.low:.2f}", f"{self.high:.2f}") else 2
        return f"{self.low:.{digits}f}–{self.high:.{digits}f}"


def speedup(record: Record, dense: Record | None) -> Speedup | None:
    """dense p50 / this p50. Its interval is the record's own: the bootstrap over interleaved rounds of the paired
    per-round ratios. Records from before interleaving carry none; theirs comes from the two medians' 95% CIs,
    divided end to end (conservative, and blind to drift between cells). The dense row itself gets 1.0."""
    p50 = record.get("latency_ms_p50")
    value = record.get("speedup_vs_dense")
    if value is None and dense is not None and p50 and dense.get("latency_ms_p50"):
        value = dense["latency_ms_p50"] / p50
    if value is None:
        return None
    if dense is None or row_key(dense) == row_key(record):
        return Speedup(value, None, None)
    if record.get("speedup_vs_dense_ci95_low") is not None:
        return Speedup(value, record["speedup_vs_dense_ci95_low"], record.get("speedup_vs_dense_ci95_high"))
    low, high = record.get("latency_ms_ci95_low"), record.get("latency_ms_ci95_high")
    dense_low, dense_high = dense.get("latency_ms_ci95_low"), dense.get("latency_ms_ci95_high")
    if not low or high is None or dense_low is None or dense_high is None:
        return Speedup(value, None, None)
    return Speedup(value, dense_low / high, dense_high / low)


def drift_flags(records: list[Record], limit: float = 0.10) -> list[str]:
    """One line per comparison group whose reference cell drifted by more than `limit` over its rounds."""
    worst: dict[tuple, tuple[float, Record]] = {}
    for r in records:
        value = r.get("reference_drift")
        if r.get("scenario") != "latency" or r.get("status") != "ok" or value is None:
            continue
        key = (r.get("task"), r.get("dtype"), r.get("batch_size"), r.get("seq_len"))
        if key not in worst or abs(value - 1) > abs(worst[key][0] - 1):
            worst[key] = (value, r)
    return [f"! drift: the reference cells of {task} {dtype} {bs}x{seq} ran {abs(value - 1):.0%} "
            f"{'slower' if value > 1 else 'faster'} in the last quarter of the rounds than in the first: the machine was "
            "not steady (paired ratios cancel drift that hits every cell of a round alike)"
            for (task, dtype, bs, seq), (value, _) in worst.items() if abs(value - 1) > limit]


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation over seeds; std is None for a single seed."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        values = [v for v in values if v is not None]
        if not values:
            return None
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
        return cls(mean, std, len(values))


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with its standard error where either side has a seed spread."""

    value: float
    se: float | None

    @classmethod
    def between(cls, a: Spread, b: Spread) -> Difference:
        parts = [s.std ** 2 / s.n for s in (a, b) if s.std is not None]
        return cls(a.mean - b.mean, math.sqrt(sum(parts)) if parts else None)

    @property
    def clear(self) -> bool:
        """Beyond two standard errors over seeds. With a single seed on both sides there is no spread to judge a
        difference by (one example more or less moves it), so none is clear; the views' notes say so."""
        return self.se is not None and abs(self.value) > 2 * self.se


@dataclass(frozen=True)
class Accuracy:
    """A row's accuracy over seeds: overall, per language and per language group."""

    key: RowKey
    overall: Spread
    languages: dict[str, Spread]
    groups: dict[str, Spread]
    agreement: float | None  # the worst seed's agreement with eager fp32
    max_diff: float | None
    examples: int | None = None  # evaluation examples behind one seed's overall accuracy (the fewest over seeds)


def reference_backend(keys: list[RowKey], task: Any) -> Any:
    """The backend whose accuracy stands for a task's variants: eager where measured (the parity reference),
    else the first one seen. Every backend runs the same artifact; the parity view shows how far they agree."""
    backends = list(dict.fromkeys(key[2] for key in keys if key[0] == task))
    return "eager" if "eager" in backends else backends[0]


_LEVELS = ("high", "medium", "low")


def language_layout(records: list[Record], task: Any) -> list[tuple[str, list[str]]]:
    """[(group, languages)] for a task: the records' language_groups in their order, then languages in no
    group as "other"; one unnamed group when the records carry none."""
    rows = [r for r in ok(records, "accuracy") if r.get("task") == task]
    langs = list(dict.fromkeys(lang for r in rows for lang in (r.get("accuracy_by_language") or {})))
    groups = next((r["language_groups"] for r in rows if r.get("language_groups")), None)
    if not groups:
        return [("", langs)] if langs else []
    # Records are written with sorted keys (high, low, medium): the resource levels go back in their order.
    names = sorted(groups, key=lambda name: _LEVELS.index(name) if name in _LEVELS else len(_LEVELS))
    layout = [(name, [lang for lang in groups[name] if lang in langs]) for name in names]
    grouped = {lang for _, members in layout for lang in members}
    layout.append(("other", [lang for lang in langs if lang not in grouped]))
    return [(name, members) for name, members in layout if members]


def accuracy_rows(records: list[Record]) -> dict[RowKey, Accuracy]:
    by_row: dict[RowKey, list[Record]] = defaultdict(list)
    for record in ok(records, "accuracy"):
        by_row[row_key(record)].append(record)
    layouts = {task: language_layout(records, task) for task in {key[0] for key in by_row}}
    out = {}
    for key, seeds in by_row.items():
        per_lang = [r.get("accuracy_by_language") or {} for r in seeds]
        overall = Spread.of([_overall(r, langs) for r, langs in zip(seeds, per_lang)])
        if overall is None:
            continue
        languages = {lang: Spread.of([p.get(lang) for p in per_lang])
                     for _, members in layouts[key[0]] for lang in members}
        groups = {name: Spread.of([_mean([p.get(lang) for lang in members]) for p in per_lang])
                  for name, members in layouts[key[0]] if name}
        agreements = [r["agreement_vs_eager_fp32"] for r in seeds if r.get("agreement_vs_eager_fp32") is not None]
        diffs = [r["max_abs_logit_diff"] for r in seeds if r.get("max_abs_logit_diff") is not None]
        examples = [r["eval_samples"] for r in seeds if isinstance(r.get("eval_samples"), int)]
        out[key] = Accuracy(key, overall, {k: v for k, v in languages.items() if v},
                            {k: v for k, v in groups.items() if v},
                            min(agreements) if agreements else None, max(diffs) if diffs else None,
                            min(examples) if examples else None)
    return out


def _overall(record: Record, by_language: dict[str, float]) -> float | None:
    return record["accuracy"] if record.get("accuracy") is not None else _mean(list(by_language.values()))


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def ratio_ci(record: Record, key: str) -> tuple[float, float, float] | None:
    """(value, low, high) of a record's paired ratio `key`, or None where it has no interval to claim on."""
    value, low, high = record.get(key), record.get(f"{key}_ci95_low"), record.get(f"{key}_ci95_high")
    if not isinstance(value, (int, float)):
        return None
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        return (value, value, value) if value == 1.0 else None  # the reference itself; else no interval: no claim
    return value, low, high


def times(ci: tuple[float, float, float]) -> str:
    """'1.93x (1.83–1.96)': two decimals, three on a bound that excludes 1.0 but would print as 1.00."""
    return f"{ci[0]:.2f}x ({Speedup(*ci).bounds_text()})"
