"""report.md and report.html in the run directory: the header, every table with its notes, and the plots.

report.md links the PNG and SVG files next to it. report.html stands alone: inline CSS, plots embedded as
base64 PNG, no script and no external asset, so it can be mailed or attached to a CI job as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from reports.findings import as_html, as_markdown, findings
from reports.header import HeaderLine, header_lines
from reports.load import Run
from reports.table import Cell, TableData

REGENERATE = "Written by `bench report` from this directory's records alone; run `bench report {path}` to regenerate."


def markdown(run: Run, views: list[TableData], plots: list) -> str:
    out = [f"# xglm-bench report: {run.run_id}", ""]
    out += [f"- **{line.label}**: {_md(line.text)}" for line in _header(run)]
    out += [""] + as_markdown(findings(run.records))
    for view in views:
        out += ["", f"## {_md(view.title)}", "", "| " + " | ".join(_md(c.name) for c in view.columns) + " |",
                "|" + "|".join("---:" if c.numeric else ":---" for c in view.columns) + "|"]
        out += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in view.rows]
        out += [""] + [f"> {_md(note)}" for note in view.notes]
    out += ["", "## Plots", ""]
    for plot in plots:
        if plot.png:
            out += [f"### {plot.title}", "", f"![{plot.title}](plots/{plot.png.name})", "",
                    f"[SVG](plots/{plot.svg.name})", ""]
    skipped = [plot for plot in plots if plot.skipped]
    if skipped:
        out += ["Not drawn:", ""] + [f"- {plot.title}: {_md(plot.skipped)}" for plot in skipped] + [""]
    out += ["---", REGENERATE.format(path=run.path), ""]
    return "\n".join(out)


def html_page(run: Run, views: list[TableData], plots: list) -> str:
    title = html.escape(f"xglm-bench report: {run.run_id}")
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{title}</h1>", "<dl>"]
    parts += [f"<dt>{html.escape(line.label)}</dt><dd class=\"{line.tone or ''}\">{html.escape(line.text)}</dd>"
              for line in _header(run)]
    parts += ["</dl>", as_html(findings(run.records))]
    # The summary, then the plots, then every other table: the plots belong on the first screens, not after ten tables.
    first, rest = views[:1], views[1:]
    parts += _html_tables(first) + _html_plots(plots) + _html_tables(rest)
    parts.append(f"<hr><p class=\"note\">{html.escape(REGENERATE.format(path=run.path))}</p></body></html>\n")
    return "\n".join(parts)


def _html_tables(views: list[TableData]) -> list[str]:
    parts: list[str] = []
    for view in views:
        parts += [f"<h2 id=\"{html.escape(view.key)}\">{html.escape(view.title)}</h2>",
                  "<div class=\"scroll\"><table><thead><tr>"]  # a wide table scrolls in its box, not the page
        parts += [f"<th class=\"{'num' if c.numeric else ''}\">{html.escape(c.name)}</th>" for c in view.columns]
        parts.append("</tr></thead><tbody>")
        for row in view.rows:
            cells = (_html_cell(cell, column.numeric) for cell, column in zip(row, view.columns))
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table></div>")
        parts += [f"<p class=\"note\">{html.escape(note)}</p>" for note in view.notes]
    return parts


def _html_plots(plots: list) -> list[str]:
    parts = ["<h2 id=\"plots\">Plots</h2>", "<div class=\"plots\">"]
    for plot in plots:
        if plot.png:
            data = base64.b64encode(plot.png.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt=\"{html.escape(plot.title)}\" src=\"data:image/png;base64,{data}\">"
                         f"<figcaption>{html.escape(plot.title)}</figcaption></figure>")
    parts.append("</div>")
    skipped = [plot for plot in plots if plot.skipped]
    if skipped:
        parts.append("<p>Not drawn:</p><ul>" + "".join(f"<li>{html.escape(p.title)}: {html.escape(p.skipped)}</li>"
                                                       for p in skipped) + "</ul>")
    return parts


def _header(run: Run) -> list[HeaderLine]:
    return header_lines(run.records, run.env, run.manifest, run.run_id)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_cell(cell: Cell) -> str:
    text = f"**{cell.text}**" if cell.tone == "better" else cell.text
    return _md(f"{text} ({cell.sub})" if cell.sub else text)


def _html_cell(cell: Cell, numeric: bool) -> str:
    classes = " ".join(c for c in ("num" if numeric else "", cell.tone or "") if c)
    sub = f"<br><span class=\"sub\">{html.escape(cell.sub)}</span>" if cell.sub else ""
    return f"<td class=\"{classes}\">{html.escape(cell.text)}{sub}</td>"


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #1a1a1a; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
td:first-child, th:first-child { white-space: nowrap; position: sticky; left: 0; background: #fff; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid #888; }
.num { text-align: right; white-space: nowrap; }
.sub { color: #666; font-size: 0.85em; }
.better { color: #006b3c; font-weight: 600; }
.worse { color: #b00020; font-weight: 600; }
.note { color: #555; font-size: 0.9em; max-width: 110ch; overflow-wrap: anywhere; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 1em; }
figure { margin: 0.5em 0; } img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
"""
