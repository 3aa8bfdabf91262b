"""A run's whole report: the views in their order, and the files (plots, report.md, report.html) written
into the run directory. Everything is derived from the records alone, so `bench report` can redo it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from reports.cells import Record
from reports.files import write_html, write_markdown
from reports.languages import per_language_views, pt_minus_ft_views
from reports.load import Run
from reports.peft import methods_views, prompt_ablation_views
from reports.plots import Plot, write_plots
from reports.table import TableData
from reports.views import latency_view, parity_view, problems_view, summary_view, throughput_view


def all_views(records: list[Record]) -> list[TableData]:
    views = [summary_view(records), latency_view(records), throughput_view(records), *methods_views(records),
             *prompt_ablation_views(records), *per_language_views(records), *pt_minus_ft_views(records),
             parity_view(records), problems_view(records)]
    return [view for view in views if view is not None]


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    plots: list[Plot]

    @property
    def drawn(self) -> int:
        return sum(1 for plot in self.plots if plot.png)


def write_report(run: Run) -> ReportFiles:
    """Plots into RUN_DIR/plots/, then report.md and report.html; a directory that cannot be written is a
    user error (the terminal views have been shown by then)."""
    views = all_views(run.records)
    try:
        plots = write_plots(run.records, run.path / "plots")
        markdown = write_markdown(run, views, plots)
        html = write_html(run, views, plots)
    except OSError as exc:
        raise BenchError(f"cannot write the report into '{run.path}': {exc.strerror or exc}") from None
    return ReportFiles(markdown, html, plots)
