"""Matplotlib plumbing for the report plots: figures without pyplot, a style that reads in print, saving as
PNG and SVG, and point labels that do not overlap.

Figures are built on Agg canvases directly (never pyplot), so rendering changes no global backend and works
headless. matplotlib is imported only inside these functions: `import reports` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.35, "grid.linewidth": 0.6, "axes.spines.top": False,
    "axes.spines.right": False, "lines.linewidth": 1.6, "lines.markersize": 6, "savefig.dpi": 150,
    "svg.fonttype": "none",  # text stays text: smaller files, searchable, sharp at any size
    "svg.hashsalt": "xglm-bench",  # stable element ids, so regenerated SVGs diff cleanly
}
# Okabe-Ito: distinguishable with colour-vision deficiency. Markers and line styles repeat the same information,
# so a plot printed in black and white still tells its series apart.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")


# The backend is a marker (and, on line plots, a line style), the same in every plot; colour is the method's.
def _backend_styles() -> tuple[dict[str, str], dict[str, str]]:
    from bench import plugins

    specs = plugins.backends()
    return {n: s.style.marker for n, s in specs.items()}, {n: s.style.line for n, s in specs.items()}


BACKEND_MARKERS, BACKEND_LINES = _backend_styles()  # from each backend's declaration (BackendSpec.style)


def backend_marker(backend: Any) -> str:
    return BACKEND_MARKERS.get(backend, MARKERS[3 + sum(map(ord, str(backend))) % (len(MARKERS) - 3)])


def backend_line(backend: Any) -> str:
    return BACKEND_LINES.get(backend, "-.")


def style(index: int) -> dict[str, Any]:
    return {"color": COLOURS[index % len(COLOURS)], "marker": MARKERS[index % len(MARKERS)]}


def new_figure(nrows: int = 1, ncols: int = 1, panel: tuple[float, float] = (6.0, 3.8), **subplots: Any):
    """(figure, flat list of axes) on an Agg canvas, sized per panel, with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, list(axes.flat)


def _matplotlib_cache() -> None:
    """matplotlib caches its font list in MPLCONFIGDIR, else ~/.config/matplotlib: a write outside the run and the
    harness's cache. Unless the user chose a directory, it goes into the harness's cache (before the first import)."""
    import os
    import sys

    if "matplotlib" not in sys.modules and "MPLCONFIGDIR" not in os.environ:
        from bench.variants.artifacts import default_cache_dir

        os.environ["MPLCONFIGDIR"] = str(default_cache_dir() / "matplotlib")


def rendered(build, *args: Any):
    """Call a figure builder under the report style; the style must also hold while saving."""
    _matplotlib_cache()
    import matplotlib

    with matplotlib.rc_context(STYLE):
        return build(*args)


def save(fig, out_dir: Path, name: str) -> tuple[Path, Path]:
    import matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with matplotlib.rc_context(STYLE):
        # tight bounding box: labels pushed apart by label_points may reach past the axes
        fig.savefig(png, format="png", bbox_inches="tight", pad_inches=0.05, metadata={"Software": None})
        fig.savefig(svg, format="svg", bbox_inches="tight", pad_inches=0.05, metadata={"Date": None})  # no timestamp
    return png, svg


def label_points(ax, points: list[tuple[float, float, str]], obstacles: list[tuple[float, float]] = ()) -> None:
    """Label points without overlaps: each label takes the first free spot around its point (nearest ring first,
    with a leader line beyond the first ring), free meaning inside the axes and clear of other labels and of
    the markers at `obstacles`. Positions are measured after layout, which is then frozen."""
    fig = ax.figure
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    pad = fig.dpi / 72 * 5  # a marker's half-width in pixels, and a little air
    markers = [tuple(ax.transData.transform(p)) for p in [*obstacles, *[(x, y) for x, y, _ in points]]]
    taken = [_box(mx, my, pad) for mx, my in markers]
    for x, y, text in sorted(points, key=lambda p: -p[1]):
        own = tuple(ax.transData.transform((x, y)))
        label = None
        for radius, (dx, dy, ha, va) in _spots():
            leader = radius > 6
            label = ax.annotate(text, (x, y), xytext=(dx * radius, dy * radius), textcoords="offset points",
                                ha=ha, va=va, fontsize=7.5, arrowprops=_LEADER if leader else None)
            box = _text_box(label, renderer)
            # Without a leader line, a label must sit clearly nearer its own point than any other, or it names the
            # wrong one.
            others = [_distance(m, box) for m in markers if m != own]
            clear = not others or _distance(own, box) + pad < min(others)
            if _inside(box, frame) and not any(box.overlaps(other) for other in taken) and (leader or clear):
                break
            label.remove()
            label = None
        if label is None:  # nowhere free: the plain spot, overlapping, beats a missing name
            label = ax.annotate(text, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=7.5)
        taken.append(_text_box(label, renderer))


_LEADER = {"arrowstyle": "-", "lw": 0.5, "color": "0.45", "shrinkA": 0, "shrinkB": 4}
_DIRECTIONS = ((1, 1, "left", "bottom"), (1, -1, "left", "top"), (-1, 1, "right", "bottom"), (-1, -1, "right", "top"),
               (0, 1.4, "center", "bottom"), (0, -1.4, "center", "top"), (1.4, 0, "left", "center"),
               (-1.4, 0, "right", "center"))


def _spots():
    for radius in (6, 14, 24, 36, 50):
        for direction in _DIRECTIONS:
            yield radius, direction


def _box(x: float, y: float, half: float):
    from matplotlib.transforms import Bbox

    return Bbox([[x - half, y - half], [x + half, y + half]])


def _text_box(label, renderer):
    """The label's text alone: an annotation's own extent includes its leader line, which always touches the point."""
    from matplotlib.text import Text

    label.update_positions(renderer)
    return Text.get_window_extent(label, renderer)


def _distance(point: tuple[float, float], box) -> float:
    dx = max(box.x0 - point[0], 0.0, point[0] - box.x1)
    dy = max(box.y0 - point[1], 0.0, point[1] - box.y1)
    return (dx * dx + dy * dy) ** 0.5


def _inside(box, frame) -> bool:
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1


def error_bars(values: list[float], intervals: list[tuple[float | None, float | None]]) -> list[list[float]]:
    """matplotlib's (below, above) lengths; a missing bound, or one on the wrong side of its value (a median
    from another seed than its interval), draws no bar on that side."""
    return [[max(v - lo, 0.0) if lo is not None else 0.0 for v, (lo, _) in zip(values, intervals)],
            [max(hi - v, 0.0) if hi is not None else 0.0 for v, (_, hi) in zip(values, intervals)]]


def annotate_cells(ax, values: list[list[float]], limits: tuple[float, float]) -> None:
    """Each cell's value, in white on the dark half of the colour map and black on the light half."""
    low, high = limits
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if value == value:  # NaN: a language this row was not evaluated on
                dark = (value - low) / ((high - low) or 1) < 0.55
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7.5,
                        color="white" if dark else "black")


def mark_groups(ax, layout: list[tuple[str, list[str]]]) -> bool:
    """Each language group's name over its columns, on a top axis of its own (so layout places the title above
    it instead of on it), and a white rule between groups; False when ungrouped."""
    edge, centres, names = 0, [], []
    for group, members in layout:
        if group:
            centres.append(edge + (len(members) - 1) / 2)
            names.append(group)
        edge += len(members)
        if edge < sum(len(m) for _, m in layout):
            ax.axvline(edge - 0.5, color="white", linewidth=2.5)
    if names:
        top = ax.secondary_xaxis("top")
        top.set_xticks(centres, names, fontsize=8, style="italic")
        top.tick_params(length=0, pad=2)
        top.spines["top"].set_visible(False)
        top.set_gid("groups")
    return bool(names)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both latency (lower) and accuracy (higher), by latency."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def legend_handle(colour: str, marker: str, linestyle: str, text: str):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=colour, marker=marker or None, linestyle=linestyle, label=text)


def random_weights_note(fig, records: list[dict[str, Any]]) -> None:
    """Said on the figure itself, since a plot travels without its report."""
    if any(r.get("random_weights") for r in records):
        fig.suptitle("Random-weight backbone: accuracy is not meaningful", color="#D55E00", fontsize=9)
