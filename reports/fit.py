"""A table that keeps its row labels at any terminal width.

Rich squeezes a table that is wider than the terminal by shrinking every column, so at 80 or 100 columns the
label columns (variant, backend, method) fold into single letters and numbers are cut. Instead, a table too wide
for the console is split into column blocks, printed one below the other, each starting with the row's leading
label columns again: every number keeps its label and every label stays whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from reports.table import TableData

KEY_LABELS = 3  # at most this many leading label columns repeat in every block (variant, backend, method)


class FittedTable:
    """Renders `data` as one Rich table when it fits the width it is given, else as column blocks."""

    def __init__(self, data: TableData, cell_text: Callable[..., Text]) -> None:
        self.data = data
        self.cell_text = cell_text

    def _table(self, columns: list[int], fixed: frozenset[int] = frozenset()) -> Table:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for i in columns:
            column = self.data.columns[i]
            # Numbers never break; labels may fold, except the repeated row labels of a block, which stay whole.
            table.add_column(column.name, justify="right" if column.numeric else "left",
                             no_wrap=column.numeric or i in fixed, overflow="fold")
        for row in self.data.rows:
            table.add_row(*(self.cell_text(row[i]) for i in columns))
        return table

    def _keys(self) -> list[int]:
        keys: list[int] = []
        for i, column in enumerate(self.data.columns[:KEY_LABELS]):
            if column.numeric:
                break
            keys.append(i)
        return keys

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        every = list(range(len(self.data.columns)))
        if self._natural(console, options, every) <= width:
            yield self._table(every)
            return
        yield from self._blocks(console, options, width)

    def _blocks(self, console: Console, options: ConsoleOptions, width: int) -> Iterator[Table]:
        keys = self._keys()
        # Labels that take more than half the width leave too little for numbers: keep the first two only.
        while len(keys) > 1 and self._natural(console, options, keys) > width // 2:
            keys.pop()
        rest = [i for i in range(len(self.data.columns)) if i not in keys]
        block: list[int] = []
        for i in rest:
            if block and self._natural(console, options, keys + block + [i]) > width:
                yield self._table(keys + block, frozenset(keys))
                block = []
            block.append(i)
        if block or not rest:
            yield self._table(keys + block, frozenset(keys))

    def _natural(self, console: Console, options: ConsoleOptions, columns: list[int]) -> int:
        wide = options.update(width=10_000)
        return Measurement.get(console, wide, self._table(columns)).maximum
