"""The comparison of runs in the terminal: which run is which (and on what hardware), then a table per metric
with every run's value side by side and each later run's ratio to the first, then cells without a counterpart."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reports.compare import Comparison, Ratio, Row, regressions
from reports.compare_differences import NOT_COMPARABLE, Difference, accuracy_comparable, differences
from reports.summary import to_rich
from reports.table import Cell, Column, TableData, build_table, interval, label

_TITLES = {"latency": "Latency p50 (ms)", "throughput": "Throughput over the evaluation set (samples/s)",
           "memory": "Peak memory (MB)", "accuracy": "Accuracy (%, mean over languages)"}
_KEY_COLUMNS = ("variant", "task", "backend", "dtype", "device", "shape")


def render_comparison(comparison: Comparison, console: Console, fail_on_regression: float | None = None) -> None:
    console.print(runs_panel(comparison))
    for view in comparison_views(comparison, fail_on_regression):
        console.print(to_rich(view))


def letters(comparison: Comparison) -> list[str]:
    return [chr(ord("A") + i) for i in range(len(comparison.runs))]


def runs_panel(comparison: Comparison) -> Panel:
    from bench.rundir import short_summary

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for letter, run in zip(letters(comparison), comparison.runs):
        devices = _devices(run)
        machine = short_summary(run.env) if run.env else "unknown machine (no env.json)"
        random = " · random weights" if any(r.get("random_weights") for r in run.records) else ""
        status = run.manifest.get("status", "unknown")
        grid.add_row(letter, Text.assemble((run.run_id, "bold"), f"  {status}{random}  {run.path}"))
        grid.add_row("", machine + (f" | measured on {', '.join(devices)}" if devices else ""))
    if different_hardware(comparison.runs):
        grid.add_row("", Text("different hardware: ratios compare the machines as well as the code", style="bold"))
    title = "xglm-bench compare: " + " vs ".join(letters(comparison)) + f" (ratios to {letters(comparison)[0]})"
    return Panel(grid, title=title, expand=False)


def comparison_views(comparison: Comparison, fail_on_regression: float | None = None) -> list[TableData]:
    names = letters(comparison)
    found = regressions(comparison, fail_on_regression) if fail_on_regression is not None else []
    flagged = {(id(r.row), r.run) for r in found}
    found_differences = differences(comparison.runs)
    comparable = accuracy_comparable(found_differences)
    views = [differences_view(found_differences, names)] if found_differences else []
    for scenario, title in _TITLES.items():
        rows = comparison.by_scenario(scenario)
        if not rows:
            continue
        changes = [f"{n}-{names[0]} pts" if scenario == "accuracy" else f"{n}/{names[0]}" for n in names[1:]]
        table_rows = []
        for row in rows:
            cells = _key_cells(row.key) | {n: _value(v, scenario) for n, v in zip(names, row.values)}
            for i, (name, ratio) in enumerate(zip(changes, row.ratios), 1):
                cells[name] = (_difference(row, i) if comparable else Cell("n/c")) if scenario == "accuracy" else \
                    _ratio(ratio, scenario, (id(row), i) in flagged)
                if scenario == "latency":
                    cells[f"{name} MDE"] = Cell("-" if ratio.mde_pct is None else f"±{ratio.mde_pct:.1f}%")
            table_rows.append(cells)
        mde = [f"{n} MDE" for n in changes] if scenario == "latency" else []
        columns = [Column(n, False) for n in _KEY_COLUMNS] + [Column(n) for n in names + changes + mde]
        notes = _notes(scenario, fail_on_regression)
        if scenario == "accuracy" and not comparable:
            kinds = sorted({d.bears_on for d in found_differences if d.bears_on in NOT_COMPARABLE})
            notes = [f"n/c: not comparable, the runs differ in {', '.join(kinds)} (see 'What differs'); an accuracy "
                     "difference would measure the inputs, not the change", *notes]
        views.append(build_table(f"compare-{scenario}", title, columns, table_rows, notes=notes,
                                 constant=("task", "dtype", "device", "shape")))
    if comparison.missing:
        rows = [_key_cells(m.key) | {"scenario": label(m.key[-1])} |
                {n: Cell(state, tone="worse" if state == "failed" else None) for n, state in zip(names, m.states)}
                for m in comparison.missing]
        columns = [Column(n, False) for n in (*_KEY_COLUMNS, "scenario", *names)]
        views.append(build_table("compare-missing", "Cells without a counterpart in every run (not compared)",
                                 columns, rows))
    return views


def differences_view(found: list[Difference], names: list[str]) -> TableData:
    rows = [{"what": label(d.label), "bears on": label(d.bears_on)} | {n: label(v) for n, v in zip(names, d.values)}
            for d in found]
    columns = [Column("what", False), Column("bears on", False)] + [Column(n, False) for n in names]
    return build_table("compare-differences", "What differs between the runs, besides the code", columns, rows,
                       notes=["cells are joined by variant name: the figures below compare these as well"],
                       constant=())


def _ratio(ratio: Ratio, scenario: str, flagged: bool) -> Cell:
    text = f"{ratio.value:.3f}x" + (" !" if flagged else "")
    if ratio.low is None:
        return Cell(text)
    lower_is_better = scenario != "throughput"
    if ratio.low > 1:
        tone = "worse" if lower_is_better else "better"
    elif ratio.high < 1:
        tone = "better" if lower_is_better else "worse"
    else:
        tone = None
    return Cell(text, interval(ratio.low, ratio.high, ".3f"), tone)


def _difference(row: Row, run: int) -> Cell:
    return Cell(f"{(row.values[run] - row.values[0]) * 100:+.2f}")


def _value(value: float, scenario: str) -> Cell:
    spec = {"latency": ".2f", "throughput": ".1f", "memory": ".0f"}.get(scenario)
    return Cell(f"{value * 100:.1f}") if scenario == "accuracy" else Cell(format(value, spec))


def _key_cells(key: tuple) -> dict[str, Cell]:
    variant, task, backend, dtype, device, batch, seq, _ = key
    shape = "-" if batch is None else (f"B={batch}" if seq is None else f"{batch}x{seq}")
    values = (label(variant), label(task), label(backend), label(dtype), label(device), Cell(shape))
    return dict(zip(_KEY_COLUMNS, values))


def _devices(run) -> list[str]:
    return sorted({str(r["device_name"]) for r in run.records if r.get("device_name")})


def different_hardware(runs) -> bool:
    """Runs measured on different machines or devices. A run with no env.json, or none of whose records names a
    device (every cell failed or skipped), says nothing about its hardware and so never makes the runs differ."""
    machines = {_hardware(run) for run in runs if run.env}
    devices = {tuple(_devices(run)) for run in runs if _devices(run)}
    return len(machines) > 1 or len(devices) > 1


def _hardware(run) -> tuple:
    env = run.env or {}
    return env.get("cpu_model"), tuple(gpu.get("name") for gpu in env.get("gpus") or [])


def _notes(scenario: str, fail_on_regression: float | None) -> list[str]:
    if scenario != "latency":
        return ["ratios without intervals: these records carry no spread"] if scenario != "accuracy" else []
    notes = ["ratio of medians with its interval below, of at least 95 % coverage: each run's order-statistic "
             "interval of its median (latency_samples_ms), else the records' intervals, divided end to end "
             "(distribution-free); red: slower beyond the interval, green: faster",
             "MDE: the smallest change each ratio could have shown at these sample counts (the wider side of its "
             "interval); a change smaller than that is not resolved by these runs"]
    if fail_on_regression is not None:
        notes.append(f"!: slower than +{fail_on_regression:g}% with the whole interval above it (a clear regression)")
    return notes
