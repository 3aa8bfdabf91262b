"""A run's whole report: the views in their order, and the files (plots, report.md, report.html) written
into the run directory. Everything is derived from the records alone, so `bench report` can redo it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bench import atomic
from bench.errors import BenchError
from reports.cells import Record
from reports.files import html_page, markdown
from reports.languages import per_language_views, pt_minus_ft_views
from reports.load import Run
from reports.peft import methods_views, prompt_ablation_views
from reports.plots import Plot, write_plots
from reports.sparsity import sparsity_views
from reports.table import TableData
from reports.views import latency_view, parity_view, problems_view, summary_view, throughput_view


def all_views(records: list[Record]) -> list[TableData]:
    views = [summary_view(records), latency_view(records), throughput_view(records), *methods_views(records),
             *sparsity_views(records), *prompt_ablation_views(records), *per_language_views(records), *pt_minus_ft_views(records),
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
    """Plots into RUN_DIR/plots/, then report.md and report.html. Everything is rendered into a staging directory
    inside the run first and moved into place only once all of it rendered, each file by a rename: a render that
    fails (or a full disk) leaves the previous report whole. A directory that cannot be written is a user error
    (the terminal views have been shown by then)."""
    import shutil
    import tempfile

    views = all_views(run.records)
    staging: Path | None = None
    try:
        staging = Path(tempfile.mkdtemp(dir=run.path, prefix=".report-"))
        staged = write_plots(run.records, staging / "plots")
        texts = {"report.md": markdown(run, views, staged), "report.html": html_page(run, views, staged)}
        plots = _move_plots(staged, run.path / "plots")
        for name, text in texts.items():
            atomic.write_text(run.path / name, text)
    except OSError as exc:
        raise BenchError(f"cannot write the report into '{run.path}': {exc.strerror or exc}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return ReportFiles(run.path / "report.md", run.path / "report.html", plots)


def _move_plots(staged: list[Plot], out_dir: Path) -> list[Plot]:
    """The staged PNG and SVG files renamed over the old ones; the files of a plot now skipped are removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    for plot in staged:
        files = {suffix: out_dir / f"{plot.name}{suffix}" for suffix in (".png", ".svg")}
        if plot.png is None:
            for path in files.values():
                path.unlink(missing_ok=True)
            plots.append(plot)
            continue
        plot.png.replace(files[".png"])
        plot.svg.replace(files[".svg"])
        plots.append(replace(plot, png=files[".png"], svg=files[".svg"]))
    return plots
