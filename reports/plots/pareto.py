"""The accuracy-latency Pareto plot: every variant on every backend as one labelled point with its 95% intervals
on both axes, the front, the chance line, and far-off points drawn as arrows at the edge instead of stretching
the axis."""

from __future__ import annotations

from reports.cells import Record, accuracy_rows, identities, per_cell, reference_shape, shape_label
from reports.method_style import method_style
from reports.plots.axes import (
    INTERVAL_NOTE, accuracy_interval, accuracy_ylim, chance_or_note, clip_x, near_limits, outliers,
)
from reports.plots.figure import (
    backend_marker, error_bars, label_points, legend_handle, new_figure, pareto_front, random_weights_note,
)

MAX_NAMED = 12  # points in a panel that can carry their variant's name; beyond, numbers and a key in the legend


def pareto(records: list[Record]):
    latency, accuracy, ids = per_cell(records, "latency", "latency_ms_p50"), accuracy_rows(records), identities(records)
    tasks = {}
    for task in dict.fromkeys(k[0] for k in accuracy):
        shape = reference_shape(latency, task)
        points = [(latency[(k, shape)]["latency_ms_p50"], accuracy[k].overall.mean * 100, k)
                  for k in accuracy if k[0] == task and (k, shape) in latency]
        if len({k[1] for *_, k in points}) >= 2:  # one variant's backends share one accuracy: no front to draw
            tasks[task] = (shape, points)
    if not tasks:
        return "needs two or more variants with both latency and accuracy records"
    fig, axes = new_figure(1, len(tasks), panel=(6.4, 4.8))
    random_weights_note(fig, records)
    methods = list(dict.fromkeys(ids[k].get("method") for _, (_, points) in tasks.items() for *_, k in points))
    backends = list(dict.fromkeys(k[2] for _, (_, points) in tasks.items() for *_, k in points))
    labelled, stair = [], False
    for ax, (task, (shape, points)) in zip(axes, tasks.items()):
        far = outliers([x for x, _, _ in points])
        kept = [p for i, p in enumerate(points) if i not in far]
        extent: list[float] = []
        ends: list[float] = []
        for x, y, k in kept:  # colour says the method, marker the backend, a hollow marker a quantized precision
            cell, interval = latency[(k, shape)], accuracy_interval(accuracy[k])
            bounds = (interval[0] * 100, interval[1] * 100) if interval else (None, None)
            timing = (cell.get("latency_ms_ci95_low"), cell.get("latency_ms_ci95_high"))
            bars = ax.errorbar([x], [y], xerr=error_bars([x], [timing]), yerr=error_bars([y], [bounds]),
                               linestyle="none", color=_colour(ids, k), marker=backend_marker(k[2]), markersize=7,
                               fillstyle="none" if ids[k].get("quantization") else "full", markeredgewidth=1.3,
                               capsize=2, elinewidth=0.7, gid=f"point-{k[1]}-{k[2]}")
            for artist in (*bars.lines[1], *bars.lines[2]):  # light bars: the points and their names come first
                artist.set_alpha(0.45)
            extent += [y] + [b for b in bounds if b is not None]
            ends += [e for e in timing if e is not None]
        # The front: a ring round each point on it, and a solid staircase through them where there are two or more
        # (dashed is the chance line's). A variant's backends are not joined: such rules read as error bars.
        front = pareto_front([(x, y) for x, y, _ in kept])
        ax.plot([x for x, _ in front], [y for _, y in front], linestyle="none", marker="o", markersize=14,
                fillstyle="none", color="0.15", markeredgewidth=1.1, zorder=3, gid="pareto-front")
        if len(front) > 1:
            ax.step([x for x, _ in front], [y for _, y in front], where="post", color="0.15", linewidth=1.4,
                    alpha=0.55, zorder=2)
            stair = True
        accuracy_ylim(ax, extent + [y for i, (_, y, _) in enumerate(points) if i in far])
        chance_or_note(ax, task)
        if kept:
            ax.set_xlim(*near_limits([x for x, _, _ in kept], ends))
        clip_x(ax, [x for x, _, _ in kept], [(x, y, f"{k[1]} · {k[2]}") for i, (x, y, k) in enumerate(points)
                                             if i in far])
        ax.set(xlabel=f"p50 latency at B x T = {shape_label(shape)} (ms)", ylabel="mean accuracy (%)",
               title=f"Accuracy vs latency · {task} (up and left is better)")
        labelled.append((ax, kept))
    handles = [legend_handle("0.15", "o", "-" if stair else "none", "Pareto front")]
    handles[0].set_fillstyle("none")
    handles += [legend_handle(method_style(m).colour, "o", "none", method_style(m).name) for m in methods]
    handles += [legend_handle("0.3", backend_marker(backend), "none", backend) for backend in backends]
    precisions = list(dict.fromkeys(ids[k]["quantization"] for _, (_, points) in tasks.items() for *_, k in points
                                    if ids[k].get("quantization")))
    if precisions:
        hollow = legend_handle("0.3", "o", "none", f"hollow: {', '.join(precisions)} linears")
        hollow.set_fillstyle("none")
        handles.append(hollow)
    # Every point carries its variant's name; where a panel has too many points for names to fit, a number,
    # and the legend's key gives the names.
    variants = list(dict.fromkeys(k[1] for _, (_, points) in tasks.items() for *_, k in points))
    numbered = max(len(kept) for _, kept in labelled) > MAX_NAMED
    names = {v: str(n) if numbered else v for n, v in enumerate(variants, 1)}
    if numbered:
        handles += [legend_handle("none", "", "none", f"{n}  {v}") for n, v in enumerate(variants, 1)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), title=INTERVAL_NOTE,
               title_fontsize=7.5)
    for ax, kept in labelled:  # after layout, which label_points then freezes
        label_points(ax, [(x, y, names[k[1]]) for x, y, k in kept], obstacles=[(x, y) for x, y, _ in kept])
    return fig


def _colour(ids: dict, key: tuple) -> str:
    return method_style(ids[key].get("method")).colour
