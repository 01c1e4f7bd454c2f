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


# no emoji codes: a message quoting a file ("root:x:0:0") must not print "root❌0:0"
console = _Console(highlight=False, emoji=False)
errors = _Console(stderr=True, highlight=False, emoji=False)


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


def _pieces(header: str) -> list[str]:
    """Where a header may break: at its spaces and after its underscores."""
    return [p for word in header.split() for p in re.findall(r"[^_]+_?", word)]


def _narrow(table: Table) -> None:
    """A table too wide for the terminal, made narrow without cutting a value: no vertical
    rules, each column as wide as its widest value or the longest piece of its header, then
    the room left given to the headers it makes whole (the narrowest first); a header still
    too wide folds after an underscore (`warmup_` / `ratio`). A space between columns where
    two do not fit."""
    table.box, table.show_edge = box.SIMPLE_HEAD, False
    headers = [c.header if isinstance(c.header, str) else "" for c in table.columns]
    need = [max([1, *map(len, _pieces(h)), *(Measurement.get(console, console.options, cell).maximum
                                             for cell in c.cells)])
            for h, c in zip(headers, table.columns, strict=True)]
    whole = [max([n, *map(len, h.split())]) for n, h in zip(need, headers, strict=True)]
    gaps = len(need) - 1
    padded = sum(need) + gaps + 2 * len(need) <= console.width
    table.padding = (0, 1) if padded else (0, 0)
    room = console.width - sum(need) - gaps - (2 * len(need) if padded else 0)
    for i in sorted(range(len(need)), key=lambda i: whole[i] - need[i]):
        if whole[i] - need[i] <= room:
            room -= whole[i] - need[i]
            need[i] = whole[i]
    for column, header, width in zip(table.columns, headers, need, strict=True):
        column.width, column.overflow = width, "fold"
        if header and width < whole[table.columns.index(column)]:
            column.header = " ".join(_pieces(header))  # rich breaks a header at its spaces
