"""The run's views in the terminal with Rich: a header panel, then every table, from the records alone.

Tables use a light box and put secondary numbers (CIs, ± std, speedups) on a second line in dim, so that a
summary with a dozen columns stays readable at 160 columns, the width the CLI uses when it is not on a TTY.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reports.fit import FittedTable
from reports.header import RANDOM_WARNING, HeaderLine, header_lines
from reports.report import all_views
from reports.table import Cell, TableData

__all__ = ["RANDOM_WARNING", "render_run", "header_panel", "to_rich"]

_TONE_STYLE = {"better": "bold green", "worse": "bold red"}


def render_run(records: list[dict[str, Any]], env: dict[str, Any] | None, manifest: dict[str, Any],
               console: Console) -> None:
    run_id = str(manifest.get("run_id") or next((r["run_id"] for r in records if r.get("run_id")), "?"))
    console.print(header_panel(header_lines(records, env, manifest, run_id)))
    for table in all_views(records):
        console.print(to_rich(table))


def header_panel(lines: list[HeaderLine]) -> Panel:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for line in lines:
        grid.add_row(line.label, Text(line.text, style=_TONE_STYLE.get(line.tone or "", "")))
    return Panel(grid, title="xglm-bench", expand=False)


def to_rich(data: TableData) -> Group:
    """Title, table, notes: title and notes at full width (as a title or caption they would wrap at the table's)."""
    table = FittedTable(data, _text)  # split into column blocks, labels repeated, where the console is narrow
    return Group(Text(data.title, style="bold"), table, *(Text(note, style="dim") for note in data.notes), Text(""))


def _text(cell: Cell) -> Text:
    text = Text(cell.text, style=_TONE_STYLE.get(cell.tone or "", ""))
    if cell.sub:
        text.append("\n" + cell.sub, style="dim")
    return text
