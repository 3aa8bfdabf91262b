"""Axis rules every report plot shares: accuracy intervals and the chance line, a y-span that does not magnify
one-example differences, an axis that one outlier cannot stretch out of use, and methods nudged apart.

The numbers come from records alone (accuracy, eval_samples, the task's label count); matplotlib is touched
only through the axes handed in, so `import reports` stays light.
"""

from __future__ import annotations

import math
from typing import Any

from bench.data.tasks import TASKS
from reports.cells import Accuracy

MIN_ACCURACY_SPAN = 20.0  # points: an accuracy axis spans at least ±10 points, so one example is not a cliff
OUTLIER_FACTOR = 3.0  # a value more than this many times the median of the others is drawn at the axis edge
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}  # Student t, 97.5%


def chance(task: Any) -> float | None:
    """Accuracy of guessing uniformly among the task's labels (XNLI 1/3, PAWS-X 1/2); None for an unknown task."""
    spec = TASKS.get(task)
    return 1 / spec.num_labels if spec else None


def accuracy_interval(acc: Accuracy) -> tuple[float, float] | None:
    """95% interval of the overall accuracy, as fractions: over seeds (Student t) where there are several, else
    Wilson's binomial interval over the evaluation examples; None when neither is known."""
    p, std, n = acc.overall.mean, acc.overall.std, acc.overall.n
    if std is not None and n > 1:
        half = _T95.get(n - 1, 1.96) * std / math.sqrt(n)
        return max(0.0, p - half), min(1.0, p + half)
    if not acc.examples:
        return None
    z, m = 1.96, acc.examples
    centre = (p + z * z / (2 * m)) / (1 + z * z / m)
    half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / (1 + z * z / m)
    return max(0.0, centre - half), min(1.0, centre + half)


INTERVAL_NOTE = "bars: 95% CI (over seeds; Wilson over the examples with one seed)"


def draw_chance(ax, task: Any) -> float | None:
    """A labelled horizontal line at chance accuracy (in %); returns it, or None for an unknown task."""
    level = chance(task)
    if level is None:
        return None
    fraction = {2: "1/2", 3: "1/3"}.get(round(1 / level), f"{level:.0%}")
    ax.axhline(level * 100, color="0.35", linewidth=1.0, linestyle=(0, (4, 3)), zorder=1, gid="chance")
    ax.annotate(f"chance {fraction}", (1.0, level * 100), xycoords=("axes fraction", "data"), xytext=(-2, 2),
                textcoords="offset points", ha="right", va="bottom", fontsize=7.5, color="0.35")
    return level * 100


def chance_or_note(ax, task: Any) -> None:
    """The chance line where it falls inside the y-limits already set; a note in the corner where it is below
    them (a plot of models far above chance is not squashed to show it)."""
    level = chance(task)
    low, high = ax.get_ylim()
    if level is None or low <= level * 100 <= high:
        draw_chance(ax, task)
    else:
        ax.text(0.99, 0.01, f"chance {level * 100:.0f}%: {'below' if level * 100 < low else 'above'} the axis",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color="0.35", gid="chance")


def accuracy_ylim(ax, values: list[float], span: float = MIN_ACCURACY_SPAN) -> None:
    """y-limits in % covering `values` (points, bar ends, the chance line), at least `span` points tall, inside
    0..100: differences of one or two examples stay small on the page."""
    ax.set_ylim(*accuracy_span(values, span))


def accuracy_span(values: list[float], span: float = MIN_ACCURACY_SPAN) -> tuple[float, float]:
    """(low, high) in % covering `values`, at least `span` points apart, inside 0..100."""
    low, high = min(values), max(values)
    pad = max((span - (high - low)) / 2, 0.08 * (high - low), 1.0)
    low, high = low - pad, high + pad
    if low < 0:
        low, high = 0.0, min(100.0, high - low)
    if high > 100:
        low, high = max(0.0, low - (high - 100)), 100.0
    return low, high


def outliers(values: list[float], factor: float = OUTLIER_FACTOR) -> set[int]:
    """Indices of values so far above the rest (more than `factor` times the median of the others) that they
    would squeeze every other point into a corner; at most a third of the points."""
    found: set[int] = set()
    for i in sorted(range(len(values)), key=lambda j: -values[j])[: len(values) // 3]:
        rest = sorted(v for j, v in enumerate(values) if j != i and j not in found)
        if not rest or values[i] <= factor * rest[len(rest) // 2]:
            break
        found.add(i)
    return found


def clip_x(ax, kept: list[float], clipped: list[tuple[float, float, str]], colour: str = "#b00020") -> None:
    """x-limits from the kept values; each clipped (x, y, name) is drawn as an arrow at the right edge with its
    name and value, so the reader sees it exists and how far off it is."""
    if not clipped:
        return
    low, high = min(kept), max(kept)
    pad = 0.12 * (high - low or high or 1.0)
    ax.set_xlim(low - pad, high + 2 * pad)
    for x, y, name in clipped:
        ax.annotate(f"{name}: {x:.3g} ms →", (1.0, y), xycoords=("axes fraction", "data"), xytext=(-4, 0),
                    textcoords="offset points", ha="right", va="center", fontsize=7.5, color=colour,
                    arrowprops=None, gid="outlier")
        ax.plot([1.0], [y], marker=">", color=colour, markersize=8, transform=ax.get_yaxis_transform(),
                clip_on=False, linestyle="none")


def near_limits(values: list[float], ends: list[float]) -> tuple[float, float]:
    """Axis limits for the values with a margin, taking in the interval ends near them; a much longer bar runs
    off the edge (clipped) instead of squeezing every point into one corner."""
    low, high = min(values), max(values)
    reach = max(high - low, 0.05 * abs(high), 1e-9)
    low = min([low] + [e for e in ends if e >= low - reach / 2])
    high = max([high] + [e for e in ends if e <= high + reach / 2])
    pad = 0.1 * (high - low or abs(high) or 1.0)
    return low - pad, high + pad


def dodge(index: int, count: int, width: float) -> float:
    """Sideways offset of series `index` of `count`, so series at the same x (2:4 and unstructured 50 %) both show."""
    return (index - (count - 1) / 2) * width
