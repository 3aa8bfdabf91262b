"""The report plots, each drawn from records alone or skipped with the reason the records give.

A builder returns a matplotlib Figure, or a string saying why the records cannot support the plot (a
dense-only run has no sparsity axis). `write_plots` saves PNG and SVG into RUN_DIR/plots/. Every plot colours a
method the same way (reports.method_style) and marks a backend the same way (reports.plots.figure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.cells import Record
from reports.plots.accuracy import accuracy_heatmap, accuracy_vs_sparsity
from reports.plots.latency import latency_vs_sparsity, throughput_vs_batch
from reports.plots.pareto import pareto
from reports.plots.prompts import prefix_overhead
from reports.plots.figure import rendered, save

__all__ = ["PLOTS", "Plot", "accuracy_heatmap", "accuracy_vs_sparsity", "latency_vs_sparsity", "pareto",
           "prefix_overhead", "throughput_vs_batch", "write_plots"]


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    png: Path | None = None
    svg: Path | None = None
    skipped: str | None = None  # why the plot is absent


PLOTS: tuple[tuple[str, str, Callable[[list[Record]], Any]], ...] = (
    ("latency_vs_sparsity", "Latency vs sparsity per method and backend", latency_vs_sparsity),
    ("accuracy_vs_sparsity", "Accuracy vs sparsity", accuracy_vs_sparsity),
    ("pareto", "Accuracy-latency Pareto front", pareto),
    ("accuracy_heatmap", "Accuracy per language", accuracy_heatmap),
    ("prefix_overhead", "Prompt length vs latency overhead (P-tuning v2 and soft prompts)", prefix_overhead),
    ("throughput_vs_batch", "Throughput vs batch size", throughput_vs_batch),
)


def write_plots(records: list[Record], out_dir: Path) -> list[Plot]:
    """Every plot the records support, as PNG and SVG; stale files of plots now skipped are removed."""
    plots = []
    for name, title, build in PLOTS:
        try:
            fig = rendered(build, records)
        except Exception as exc:  # one plot that cannot cope with odd records must not cost the rest of the report
            fig = f"failed: {type(exc).__name__}: {exc}"
        if isinstance(fig, str):
            for suffix in (".png", ".svg"):
                (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
            plots.append(Plot(name, title, skipped=fig))
            continue
        png, svg = save(fig, out_dir, name)
        plots.append(Plot(name, title, png, svg))
    return plots
