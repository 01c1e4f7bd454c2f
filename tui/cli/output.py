"""Where the `tunelab` command writes: `console` (stdout) and `errors` (stderr).

On a terminal, rich wraps long lines to the window. Into a pipe or a log (nohup, CI, `| tee`)
it would wrap at 80 columns, which splits one `file:line: message` over two lines and breaks
grep; so away from a terminal lines are never wrapped (soft wrap), decided when each line is
printed (tests and `tunelab … > log` swap stdout after this module is imported).
"""

from __future__ import annotations

import re

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


class _Console(Console):
    """A rich console that wraps lines only on a terminal."""

    @property
    def soft_wrap(self) -> bool:
        return not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        pass  # set by Console.__init__; decided per line instead


console = _Console(highlight=False)
errors = _Console(stderr=True, highlight=False)


def width() -> int | None:
    """The width a line is fitted to (tui/cli/layout.py): the terminal's; in a pipe or a log,
    None (lines are never wrapped there)."""
    return console.width if console.is_terminal else None


def print_wide(table: Table) -> None:
    """A table to stdout: in a pipe or a log at its natural width (lines there are never
    wrapped), so no header is cut to `duratio…`; on a terminal, fitted to the window."""
    if not console.is_terminal:
        Console(file=console.file, width=1000, highlight=False).print(table)
        return
    if Measurement.get(console, console.options.update_width(10_000), table).maximum > console.width:
        _narrow(table)
    console.print(table)


def _narrow(table: Table) -> None:
    """A table too wide for the terminal, made narrow without cutting a value: no vertical
    rules, each column as wide as its widest value or the longest piece of its header, which
    folds there (`warmup_` / `ratio`, `test` / `exact_` / `match`), and a space between
    columns where two do not fit."""
    table.box, table.show_edge = box.SIMPLE_HEAD, False
    for column in table.columns:
        header = column.header if isinstance(column.header, str) else ""
        pieces = [p for word in header.split() for p in re.findall(r"[^_]+_?", word)]
        cells = [Measurement.get(console, console.options, c).maximum for c in column.cells]
        column.width = max([1, *map(len, pieces), *cells])
        if isinstance(column.header, str):
            column.header = " ".join(pieces)  # rich breaks a header at its spaces: there
        column.overflow = "fold"
    widths = sum(c.width or 0 for c in table.columns) + len(table.columns) - 1
    table.padding = (0, 1) if widths + 2 * len(table.columns) <= console.width else (0, 0)

