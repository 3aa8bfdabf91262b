"""Hardware targets in the terminal and on a plot: what each run costs, $ per million samples and samples per joule
for every measured cell, the best target per variant (fastest, cheapest, most energy-efficient, each with its
interval), and latency against cost per target (latency_vs_cost.png / .svg)."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console

from reports.cost import Best, CostCell, Pick, Price, best_targets
from reports.load import Run
from reports.table import Cell, Column, TableData, build_table, fmt, interval, label

_CLEAR_NOTE = ("~: the runner-up's interval reaches this one's, so the winner is not clear; intervals: 95% CI of the "
               "median latency (cost scales with it), and samples per joule within the energy counter's uncertainty "
               "where the record carries one")


def render_targets(runs: list[Run], prices: list[Price | None], console: Console, plots: Path | None = None) -> None:
    """The cost views, when there is something to weigh: a price, a plot asked for, or runs on different devices."""
    from reports.cost import cost_cells
    from reports.summary import to_rich

    if not compares_targets(runs, prices, plots):
        return
    names = [chr(ord("A") + i) for i in range(len(runs))]
    cells = cost_cells(runs, prices)
    for view in cost_views(runs, prices, cells, names):
        console.print(to_rich(view))
    if plots is not None:
        plot = write_latency_vs_cost(cells, names, plots)
        console.print(f"plot: {plot.png}, {plot.svg}" if plot.png else f"plot not drawn: {plot.skipped}",
                      highlight=False, soft_wrap=True)


def compares_targets(runs: list[Run], prices: list[Price | None], plots: Path | None = None) -> bool:
    """Whether the runs are weighed as hardware targets: a price given or recorded, a plot asked for, or runs on
    different devices. Then runs that share no cell are still compared (by target); else sharing none is an error."""
    return any(price is not None for price in prices) or plots is not None or len({_device(run) for run in runs}) > 1


def cost_views(runs: list[Run], prices: list[Price | None], cells: list[CostCell], names: list[str]) -> list[TableData]:
    views = [price_table(runs, prices, names)]
    if any(prices):
        views.append(cost_table(cells, names))
    best = best_targets(cells)
    if best:
        views.append(best_table(best, names))
    return views


def price_table(runs: list[Run], prices: list[Price | None], names: list[str]) -> TableData:
    rows = [{"run": Cell(name), "run id": label(run.run_id), "device": label(_device(run)),
             "$ / hour": Cell(f"{price.usd_per_hour:.2f}", price.source) if price else Cell("-", "no price")}
            for name, run, price in zip(names, runs, prices)]
    notes = [] if all(prices) else ["a run without a price gets none of the $ figures: give --price RUN=USD_PER_HOUR "
                                    "or record [cost] usd_per_hour in its config"]
    return build_table("cost-prices", "Hardware targets and their prices (what one group occupies, per hour)",
                       [Column("run", False), Column("run id", False), Column("device", False), Column("$ / hour")],
                       rows, notes=notes, constant=())


def cost_table(cells: list[CostCell], names: list[str]) -> TableData:
    rows = []
    for cell in sorted(cells, key=lambda c: (*map(str, c.cell[:2]), _shape_order(c), c.run, *c.target)):
        record = cell.record
        rows.append({
            "variant": label(record["variant"]), "task": label(record["task"]), "shape": Cell(_shape(cell)),
            "target": Cell(_target(cell, names)), "device": label(record.get("device_name") or record.get("device")),
            "p50 ms": Cell(fmt(cell.latency_ms), interval(*cell.latency_ci)) if cell.latency_ms else Cell("-"),
            "$ / M samples": _figure(cell.usd_per_million, cell.usd_ci),
            "samples / J": _figure(cell.samples_per_j, cell.samples_per_j_ci),
        })
    columns = [Column(n, False) for n in ("variant", "task", "shape", "target", "device")] + \
        [Column(n) for n in ("p50 ms", "$ / M samples", "samples / J")]
    notes = ["$ per million samples = price per hour / 3600 x seconds per sample x 1e6; at a B x T shape a sample takes "
             "p50 / B (its 95% CI below it), over the evaluation pass ('eval') 1 / throughput (no interval)",
             "samples per joule only where the device has an energy counter (NVML, GPUs from Volta on)"]
    return build_table("cost-cells", "Cost per cell: $ per million samples and samples per joule", columns, rows,
                       optional=("samples / J",), notes=notes)


def best_table(best: list[Best], names: list[str]) -> TableData:
    rows = []
    for item in sorted(best, key=lambda b: (str(b.cell[0]), str(b.cell[1]), b.cell[2] or 0, b.cell[3] or 0)):
        variant, task, batch, seq = item.cell
        rows.append({"variant": label(variant), "task": label(task), "shape": Cell(f"{batch}x{seq}"),
                     "targets": Cell(str(item.targets)),
                     "fastest (p50 ms)": _pick(item.fastest, names),
                     "cheapest ($ / M samples)": _pick(item.cheapest, names),
                     "most efficient (samples / J)": _pick(item.most_efficient, names)})
    columns = [Column(n, False) for n in ("variant", "task", "shape")] + [Column("targets")] + \
        [Column(n, False) for n in ("fastest (p50 ms)", "cheapest ($ / M samples)", "most efficient (samples / J)")]
    return build_table("cost-best", "Best target per variant (a target: run x backend x dtype)", columns, rows,
                       notes=[_CLEAR_NOTE])


def write_latency_vs_cost(cells: list[CostCell], names: list[str], out_dir: Path):
    """The plot as PNG and SVG in out_dir, or a string saying why it cannot be drawn."""
    from reports.plots import Plot
    from reports.plots.figure import rendered, save

    fig = rendered(_latency_vs_cost, cells, names)
    if isinstance(fig, str):
        return Plot("latency_vs_cost", "Latency vs cost per target", skipped=fig)
    png, svg = save(fig, out_dir, "latency_vs_cost")
    return Plot("latency_vs_cost", "Latency vs cost per target", png, svg)


def _latency_vs_cost(cells: list[CostCell], names: list[str]):
    """Per task, at the shape most targets measured: p50 against $ per million samples, one series per target,
    one point per variant, 95% CI bars on both axes."""
    from collections import Counter

    from matplotlib.ticker import FuncFormatter

    from reports.plots.figure import error_bars, label_points, new_figure, style

    priced = [c for c in cells if c.latency_ms is not None and c.usd_per_million is not None]
    if not priced:
        return "no priced latency cells: give --price RUN=USD_PER_HOUR (or record [cost] usd_per_hour)"
    tasks = list(dict.fromkeys(c.record["task"] for c in priced))
    fig, axes = new_figure(ncols=len(tasks), panel=(6.4, 4.4))
    series = list(dict.fromkeys(_target(c, names) for c in priced))
    for ax, task in zip(axes, tasks):
        counts = Counter(c.cell[2:4] for c in priced if c.record["task"] == task)
        shape = max(counts, key=lambda s: (counts[s], s))  # measured by the most targets; then the largest batch
        points = []
        for index, name in enumerate(series):
            chosen = [c for c in priced if c.record["task"] == task and c.cell[2:4] == shape and _target(c, names) == name]
            if not chosen:
                continue
            xs, ys = [c.usd_per_million for c in chosen], [c.latency_ms for c in chosen]
            ax.errorbar(xs, ys, xerr=error_bars(xs, [c.usd_ci for c in chosen]),
                        yerr=error_bars(ys, [c.latency_ci for c in chosen]), linestyle="none", capsize=3,
                        label=name, **style(index))
            points += [(x, y, c.record["variant"]) for x, y, c in zip(xs, ys, chosen)]
        ax.set(xscale="log", yscale="log", xlabel="$ per million samples (log)", ylabel="p50 latency (ms, log)",
               title=f"Latency vs cost · {task} · B x T = {shape[0]}x{shape[1]} (bars: 95% CI)")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers on log axes (0.5, not 5 x 10^-1)
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(FuncFormatter(lambda v, _, axis=axis: _minor_tick(v, axis)))
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="target")
        label_points(ax, points)
    return fig


def _minor_tick(value: float, axis) -> str:
    """Every minor tick within one decade; across decades only 2 and 5, which do not crowd."""
    low, high = axis.get_view_interval()
    return f"{value:g}" if high / low < 10 or f"{value:.0e}"[0] in "25" else ""


def _pick(pick: Pick | None, names: list[str]) -> Cell:
    if pick is None:
        return Cell("-")
    figure = _figure(pick.value, pick.interval)
    return Cell(_target(pick.cell, names) + ("" if pick.clear else " ~"),
                figure.text + (f" ({figure.sub})" if figure.sub else ""))


def _figure(value: float | None, bounds: tuple[float | None, float | None]) -> Cell:
    """Three significant digits, and the interval with as many decimals: 0.450 (0.446–0.454), 12.3 (12.1–12.5)."""
    if value is None:
        return Cell("-")
    decimals = max(0, 2 - math.floor(math.log10(abs(value)))) if value else 2
    return Cell(f"{value:.{decimals}f}", interval(*bounds, f".{decimals}f"))


def _target(cell: CostCell, names: list[str]) -> str:
    return f"{names[cell.run]} {cell.record['backend']} {cell.record['dtype']}"


def _shape(cell: CostCell) -> str:
    _, _, batch, seq, scenario = cell.cell
    return f"eval B={batch}" if scenario == "throughput" else f"{batch}x{seq}"


def _shape_order(cell: CostCell) -> tuple:
    _, _, batch, seq, scenario = cell.cell
    return scenario != "latency", batch or 0, seq or 0


def _device(run: Run) -> str:
    names = sorted({str(r["device_name"]) for r in run.records if r.get("device_name")})
    return ", ".join(names) or "?"
