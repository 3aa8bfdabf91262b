"""The terminal views at 80 and 100 columns: every table keeps its row labels (variant, backend) whole, numbers
are never cut, and no line runs past the terminal (reports/fit.py splits a wide table into column blocks)."""

from pathlib import Path

import pytest
from rich.console import Console

from reports.load import load_run
from reports.summary import render_run

RUNS = Path(__file__).parent / "fixtures" / "recorded"


def _render(name: str, width: int) -> str:
    run = load_run(RUNS / name)
    console = Console(record=True, width=width, force_terminal=False)
    render_run(run.records, run.env, run.manifest, console)
    return console.export_text()


def _blocks(text: str, title: str) -> list[list[str]]:
    """The header lines of the column blocks of the table titled `title` (up to the next table's title)."""
    section = text.split(title, 1)[1].split("\n\n", 1)[0] if title in text else ""
    lines = section.splitlines()
    return [line.split() for line, below in zip(lines, lines[1:]) if below.strip().startswith("─")]


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("name", ["synthetic-study", "cpu-dense"])
def test_summary_keeps_variant_and_backend_at_narrow_widths(name, width):
    text = _render(name, width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    headers = _blocks(text, "Summary (")
    assert headers, text
    for header in headers:  # every block starts with the row labels again
        assert header[:2] == ["variant", "backend"] or header[:3] == ["variant", "task", "backend"]
    every = {name for header in headers for name in header}
    for column in ("p50", "vs", "accuracy", "samples/s"):  # nothing was dropped to make it fit
        assert column in every
    # Each row's labels are whole words on one line, with its numbers beside them.
    assert any(line.split()[:2] == ["dense-ft", "onnxruntime"] or line.split()[:3] == ["dense-ft", "xnli",
               "onnxruntime"] for line in text.splitlines())


def test_peft_minus_ft_keeps_its_labels_at_80_columns():
    text = _render("synthetic-study", 80)
    section = text.split("PEFT − FT", 1)[1].split("Backend parity", 1)[0]
    labelled = [line.split() for line in section.splitlines() if line.lstrip().startswith("prompt-p16")]
    assert labelled and all(words[1] == "prompt" and words[2] == "P=16" for words in labelled)


def test_a_table_that_fits_stays_one_table():
    assert len(_blocks(_render("cpu-dense", 160), "Summary (")) == 1
    assert len(_blocks(_render("cpu-dense", 80), "Summary (")) == 2
