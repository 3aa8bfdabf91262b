"""The performance views of a run as plain tables: the summary, latency by shape, the evaluation-set throughput,
backend parity, and the cells that were not measured. Per-language accuracy lives in reports/languages.py."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from reports.cells import (
    Record,
    RowKey,
    Speedup,
    accuracy_rows,
    dense_key,
    dense_variants,
    drift_flags,
    identities,
    masked_dense_control,
    ordered_rows,
    per_cell,
    reference_shape,
    row_key,
    shape_label,
    speedup,
)
from reports.claims import ClaimRule
from reports.method_style import method_label
from reports.table import Cell, Column, TableData, build_table, interval, label, num, share

_NOISY_CV = 0.10  # beyond this, a cell's p50 moves with the machine's load more than with the code


def speedup_text(value: Speedup | None, control: bool, stray: bool = False) -> Cell:
    """Measured speedup with its interval; a masked-dense control gets a '!' where it strays (`stray`: the run's
    claim rule, A/A floor and Holm, would call its ratio an effect), and never a tone otherwise."""
    if value is None:
        return Cell("-")
    sub = value.bounds_text()
    if control and stray:
        return Cell(f"{value.value:.2f}x !", sub, "worse")
    tone = None if not value.excludes_one or control else ("better" if value.value > 1 else "worse")
    return Cell(f"{value.value:.2f}x", sub, tone)


def summary_view(records: list[Record]) -> TableData | None:
    latency = per_cell(records, "latency", "latency_ms_p50")
    memory = per_cell(records, "memory", "peak_memory_mb")
    accuracy = accuracy_rows(records)
    ids, dense = identities(records), dense_variants(records)
    keys = [k for k in ordered_rows(records) if any(r.get("status") == "ok" and row_key(r) == k for r in records)]
    if not keys:
        return None
    shapes = {task: reference_shape(latency, task) for task in dict.fromkeys(k[0] for k in keys)}
    fastest = _best({(k, shapes[k[0]]): latency.get((k, shapes[k[0]])) for k in keys}, "latency_ms_p50", min)
    # Random weights make accuracy meaningless (the header says so): then no accuracy is marked best.
    meaningless = any(r.get("random_weights") for r in records)
    best_acc = {} if meaningless else _best_by_task({k: accuracy[k].overall.mean for k in keys if k in accuracy}, max)
    # The Findings' rule for what counts as an effect (A/A floor, Holm over the same shape's cells): a control is
    # flagged only where it would be claimed, so the table and the Findings never disagree.
    rule = ClaimRule.of([r for (k, s), r in latency.items() if s == shapes.get(k[0])])
    rows, flags = [], []
    for key in keys:
        task, variant, backend, dtype, _ = key
        ident, shape = ids[key], shapes[task]
        lat = latency.get((key, shape)) or {}
        ref = dense_key(key, dense)
        gain = speedup(lat, latency.get((ref, shape))) if lat and ref else None
        control = masked_dense_control(ident)
        stray = bool(control and gain and gain.excludes_one
                     and rule.verdict(lat, "speedup_vs_dense", (gain.value, gain.low, gain.high)).claimed)
        if stray:
            flags.append(f"! {variant} {backend} {task}: a masked-dense control should run at 1.00x dense; "
                         f"{gain.value:.2f}x {gain.bounds_text()} excludes 1.0, so noise or a backend "
                         "difference colours the timings of this run")
        acc = accuracy.get(key)
        counters = lat or memory.get((key, shape)) or {}
        rows.append({
            "variant": label(variant), "task": label(task), "backend": label(backend), "dtype": label(dtype),
            "method": Cell(method_label(ident)),
            "trainable": Cell(share(_trainable_share(ident))),
            "p50 ms": num(lat.get("latency_ms_p50"),
                          sub=interval(lat.get("latency_ms_ci95_low"), lat.get("latency_ms_ci95_high")),
                          tone="better" if lat and fastest.get((key, shape)) else None),
            "p99 ms": num(lat.get("latency_ms_p99")),
            "samples/s": num(lat.get("throughput_samples_per_s"), ".1f"),
            "peak MB": num((memory.get((key, shape)) or {}).get("peak_memory_mb"), ".0f"),
            "accuracy %": num(acc.overall.mean * 100 if acc else None, ".1f",
                              sub=f"±{acc.overall.std * 100:.1f}" if acc and acc.overall.std is not None else "",
                              tone="better" if best_acc.get(key) else None),
            "vs dense": speedup_text(gain, control, stray),
            "ideal": num(ident.get("speedup_ideal"), ".2f", "x"),
            "% peak": _percent_of_peak(counters),
            "J/sample": num(counters.get("energy_j_per_sample"), ".3g"),
        })
    distinct = {shape for shape in shapes.values() if shape}
    where = shape_label(next(iter(distinct))) if len(distinct) == 1 else \
        ", ".join(f"{task} {shape_label(shape)}" for task, shape in shapes.items() if shape)
    columns = [Column("variant", False), Column("task", False), Column("backend", False), Column("dtype", False),
               Column("method", False), Column("trainable"), Column("p50 ms"), Column("p99 ms"), Column("samples/s"),
               Column("peak MB"), Column("accuracy %"), Column("vs dense"), Column("ideal"), Column("% peak"),
               Column("J/sample")]
    explained = ["p50 with the bootstrap 95% CI of the median below it",
                 "vs dense: the dense variant on the same backend and dtype, measured in the same interleaved rounds "
                 "(beside each cell where reference_every > 0); the median of per-round ratios with a bootstrap 95% "
                 "CI over rounds (green or red only where it excludes 1.0)",
                 "p99 only from 662 samples or more, '-' below (MLPerf LoadGen's minimum)",
                 "ideal: the speedup the variant's FLOPs would allow" if any(r["ideal"].text != "-" for r in rows)
                 else "",
                 "accuracy: mean over languages, ± std over seeds where there are several",
                 "trainable: share of parameters trained"]
    notes = ["; ".join(part for part in explained if part)] + flags + drift_flags(records)
    title = f"Summary (latency at B x T = {where}, the shape measured most; every shape below)" if where else "Summary"
    return build_table("summary", title, columns, rows, notes=notes,
                       optional=("p50 ms", "p99 ms", "samples/s", "peak MB", "accuracy %", "vs dense", "ideal",
                                 "% peak", "J/sample"))


def latency_view(records: list[Record]) -> TableData | None:
    latency = per_cell(records, "latency", "latency_ms_p50")
    if not latency:
        return None
    dense = dense_variants(records)
    shapes = sorted({shape for _, shape in latency}, key=lambda s: (s[0] or 0, s[1] or 0))
    fastest = _best(latency, "latency_ms_p50", min)
    rows = []
    for key in [k for k in ordered_rows(records) if any(k == ck for ck, _ in latency)]:
        row: dict[str, Cell] = {"variant": label(key[1]), "task": label(key[0]), "backend": label(key[2]),
                                "dtype": label(key[3])}
        cvs, builds = [], {}
        for shape in shapes:
            record = latency.get((key, shape))
            if record is None:
                continue
            ref = dense_key(key, dense)
            gain = speedup(record, latency.get((ref, shape))) if ref and ref != key else None
            row[shape_label(shape)] = num(record["latency_ms_p50"], sub=f"{gain.value:.2f}x" if gain else "",
                                          tone="better" if fastest.get((key, shape)) else None)
            cvs.append(record.get("latency_cv"))
            builds.update({k: record[k] for k in ("compile_s", "export_s", "session_s") if record.get(k) is not None})
        worst = max((cv for cv in cvs if cv is not None), default=None)
        row["max CV"] = num(worst, ".1%", tone="worse" if worst is not None and worst > _NOISY_CV else None)
        row["build s"] = Cell(", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in builds.items()) or "-")
        rows.append(row)
    columns = [Column("variant", False), Column("task", False), Column("backend", False), Column("dtype", False),
               *(Column(shape_label(s)) for s in shapes), Column("max CV"), Column("build s", False)]
    notes = ["p50 ms per batch x sequence shape; below it, the speedup over dense on the same backend and dtype. "
             f"max CV above {_NOISY_CV:.0%} marks a noisy cell; build: one-off compile, export and session seconds, "
             "kept out of the timings"]
    return build_table("latency", "Latency p50 by shape (ms; warm-up excluded)", columns, rows, notes=notes)


def throughput_view(records: list[Record]) -> TableData | None:
    cells = per_cell(records, "throughput", "throughput_samples_per_s")
    if not cells:
        return None
    spread = _identical_compute_spread(cells, dense_variants(records))
    # With no interval, "best" is only said where it leads the runner-up by more than identical cells differ.
    best = _best(cells, "throughput_samples_per_s", max, margin=spread or 0.0)
    rows = [{"variant": label(key[1]), "task": label(key[0]), "backend": label(key[2]), "dtype": label(key[3]),
             "batch": label(shape[0]),
             "samples/s": num(r["throughput_samples_per_s"], ".1f", tone="better" if best.get((key, shape)) else None),
             "tokens/s real": num(r.get("throughput_tokens_per_s"), ".0f"),
             "tokens/s padded": num(r.get("throughput_padded_tokens_per_s"), ".0f"),
             "padding": num(r.get("throughput_padding_share"), ".0%")}
            for (key, shape), r in _in_row_order(cells, records)]
    columns = [Column("variant", False), Column("task", False), Column("backend", False), Column("dtype", False),
               *(Column(n) for n in ("batch", "samples/s", "tokens/s real", "tokens/s padded", "padding"))]
    notes = ["one pass over the evaluation set per cell, timed with the accuracy pass and not interleaved with the "
             "dense reference, so it has no interval" + (
                 f"; this run's masked-dense controls, the same compute as dense, differ from it by up to "
                 f"{spread:.0%} here: read smaller differences as noise" if spread is not None else "")
             + "; the summary's samples/s at fixed shapes come with intervals"]
    return build_table("throughput", "Throughput over the evaluation set (length-sorted batches)", columns, rows,
                       notes=notes, optional=("tokens/s real", "tokens/s padded", "padding"))


def _identical_compute_spread(cells: dict, dense: dict[tuple, Any]) -> float | None:
    """The largest |control / dense - 1| of samples/s over the masked-dense controls: cells that do the dense
    variant's work exactly, so what separates them is the measurement alone. None without a control."""
    gaps = []
    for (key, shape), record in cells.items():
        ref = cells.get((dense_key(key, dense), shape)) if masked_dense_control(record) else None
        if ref and ref.get("throughput_samples_per_s"):
            gaps.append(abs(record["throughput_samples_per_s"] / ref["throughput_samples_per_s"] - 1))
    return max(gaps) if gaps else None


def parity_view(records: list[Record]) -> TableData | None:
    accuracy = accuracy_rows(records)
    if not accuracy:
        return None
    rows = []
    for key in [k for k in ordered_rows(records) if k in accuracy]:
        acc = accuracy[key]
        eager = accuracy.get((key[0], key[1], "eager", "fp32", key[4]))
        delta = None if eager is None or eager is acc else (acc.overall.mean - eager.overall.mean) * 100
        rows.append({"variant": label(key[1]), "task": label(key[0]), "backend": label(key[2]), "dtype": label(key[3]),
                     "accuracy %": num(acc.overall.mean * 100, ".1f"),
                     "vs eager fp32 pts": num(delta, "+.2f"),
                     "agreement": num(acc.agreement, ".2%", tone="worse" if (acc.agreement or 1.0) < 0.99 else None),
                     "max |logit diff|": num(acc.max_diff, ".1e")})
    columns = [Column("variant", False), Column("task", False), Column("backend", False), Column("dtype", False),
               Column("accuracy %"), Column("vs eager fp32 pts"), Column("agreement"), Column("max |logit diff|")]
    notes = ["each backend runs the same artifact on the same rows; agreement: share of predictions equal to eager "
             "fp32's (red below 99%)"]
    return build_table("parity", "Backend parity with eager fp32", columns, rows, notes=notes)


def problems_view(records: list[Record]) -> TableData | None:
    groups: dict[tuple, list[str]] = defaultdict(list)
    for r in records:
        if r.get("status") != "ok":
            key = (r.get("variant"), r.get("task"), r.get("backend"), r.get("dtype"), r.get("status"), r.get("error"))
            groups[key].append(str(r.get("scenario")))
    if not groups:
        return None
    rows = [{"variant": label(v), "task": label(t), "backend": label(b), "dtype": label(d),
             "status": Cell(str(s), tone="worse" if s == "failed" else None),
             "scenarios": Cell(", ".join(dict.fromkeys(scenarios))
                               + (f" ({len(scenarios)} records)" if len(scenarios) > 1 else "")),
             "reason": Cell(e or "(no reason recorded)")}
            for (v, t, b, d, s, e), scenarios in groups.items()]
    columns = [Column("variant", False), Column("task", False), Column("backend", False), Column("dtype", False),
               Column("status", False), Column("scenarios", False), Column("reason", False)]
    return build_table("problems", "Cells not measured", columns, rows)


def _percent_of_peak(counters: Record) -> Cell:
    """% of the calibrated peak; above 100 the peak was no peak (a backend beat the library it was measured with,
    `bench calibrate`): flagged, never shown as a plain figure."""
    value = counters.get("percent_of_peak")
    if isinstance(value, (int, float)) and value > 100:
        return Cell(f"{value:.1f}% !", "above the calibrated peak: recalibrate", "worse")
    return num(value, ".1f", "%", sub=counters.get("bound") or "")


def _trainable_share(record: Record) -> float | None:
    if record.get("trainable_share") is not None:
        return record["trainable_share"]
    total, trainable = record.get("params_total"), record.get("params_trainable")
    return trainable / total if total and trainable is not None else None


def _best(cells: dict[Any, Record | None], metric: str, pick, margin: float = 0.0) -> dict[Any, bool]:
    """Which cells hold the best value of `metric` among two or more of the same task and shape (ties all win);
    with a margin, only a best that leads the runner-up by more than that share."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for (key, shape), r in cells.items():
        if r and r.get(metric) is not None:
            groups[(key[0], shape)].append(r[metric])

    def leads(values: list[float]) -> bool:
        top, *rest = sorted(values, reverse=pick is max)
        return not rest or not margin or abs(top / rest[0] - 1) > margin

    return {(key, shape): bool(r) and r.get(metric) is not None and len(groups[(key[0], shape)]) > 1
            and r[metric] == pick(groups[(key[0], shape)]) and leads(groups[(key[0], shape)])
            for (key, shape), r in cells.items()}


def _best_by_task(values: dict[RowKey, float], pick) -> dict[RowKey, bool]:
    by_task: dict[Any, list[float]] = defaultdict(list)
    for key, value in values.items():
        by_task[key[0]].append(value)
    return {key: value == pick(by_task[key[0]]) and len(by_task[key[0]]) > 1 for key, value in values.items()}


def _in_row_order(cells: dict, records: list[Record]) -> list[tuple]:
    order = {key: i for i, key in enumerate(ordered_rows(records))}
    return sorted(cells.items(), key=lambda item: (order.get(item[0][0], 0), item[0][1][0] or 0))

