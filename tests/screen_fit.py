"""Does a screen fit its terminal? What a person would see wrong, found on the screen as drawn.

`problems(app)` reads the screen the app shows now and returns what is wrong with it, in words:
- a number cut to an ellipsis (`0.6…`, a cell that is only `…`);
- a table cell cut by its column, or a table wider than its space with no column held at the
  left (scrolled right, the rows lose what they are);
- a sentence cut: a text taller than the room it is given, a placeholder wider than its box,
  a footer whose keys run off the screen;
- a plot's legend inside the plot, a point that cannot be seen where it lies, or one that sits
  on an axis line.

Any screen gets the checks for free: `assert not problems(app)` after driving it there.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable

from rich.console import Console
from textual.app import App
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static

from tunelab.tui.widgets.plot import MARKERS, LinePlot

# a digit then an ellipsis, an ellipsis then a digit, or a cell that is an ellipsis alone
CUT_NUMBER = re.compile(r"\d…|…\d|(?:^|[\s│|])…(?:[\s│|]|$)")


def screen_lines(app: App) -> list[str]:
    """The screen as a person sees it, one string per row."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text(styles=False).splitlines()[:height]


def visible(widget: Widget) -> bool:
    region = widget.region
    return widget.display and widget.visible and region.width > 0 and region.height > 0 \
        and all(a.display for a in widget.ancestors_with_self if isinstance(a, Widget))


def problems(app: App) -> list[str]:
    """Everything that does not fit on the app's screen now (empty when all is well)."""
    lines = screen_lines(app)
    screen = app.screen
    found = [f"a number cut to an ellipsis: {line.strip()!r}"
             for line in lines if CUT_NUMBER.search(line)]
    found += _cut_texts(screen.query(Static), app)
    found += _cut_inputs(screen.query(Input))
    found += _cut_tables(screen.query(DataTable))
    found += _cut_footers(screen.query(Footer))
    for plot in screen.query(LinePlot):
        if visible(plot):
            found += plot_problems(plot, lines)
    return found


def _cut_texts(statics: Iterable[Static], app: App) -> list[str]:
    found = []
    for widget in statics:
        if not visible(widget) or isinstance(widget.parent, DataTable):
            continue
        width = widget.content_region.width
        if width <= 0:
            continue
        needed = widget.get_content_height(widget.parent.size if widget.parent else app.size,
                                           Size(*app.size), width)
        room = widget.content_size.height
        if needed > room:
            text = " ".join(str(widget.render()).split())
            found.append(f"a text cut ({needed} lines in {room}): {text[:70]!r}")
    return found


def _cut_inputs(inputs: Iterable[Input]) -> list[str]:
    return [f"a placeholder cut: {box.placeholder!r}" for box in inputs
            if visible(box) and not box.value and len(box.placeholder) > box.content_size.width]


def _cut_tables(tables: Iterable[DataTable]) -> list[str]:
    found = []
    for table in tables:
        if not visible(table) or not table.row_count:
            continue
        for column in table.ordered_columns:
            room = column.get_render_width(table) - 2 * table.cell_padding
            if column.content_width > room:
                found.append(f"a column cut: {column.label.plain!r} ({column.content_width} "
                             f"characters in {room})")
        if table.virtual_size.width > table.scrollable_content_region.width \
                and not table.fixed_columns:
            found.append(f"a table wider than the screen with no column held at the left: "
                         f"{[c.label.plain for c in table.ordered_columns][:3]}…")
    return found


def _cut_footers(footers: Iterable[Footer]) -> list[str]:
    found = []
    for footer in footers:
        if visible(footer) and footer.virtual_size.width > footer.size.width:
            found.append(f"a footer wider than the screen ({footer.virtual_size.width} columns "
                         f"in {footer.size.width}): its last keys are not shown")
    return found


# ---------------------------------------------------------------- plots

# plotext's box around the plotting area
TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT = "┌", "┐", "└"


def plot_problems(plot: LinePlot, lines: list[str]) -> list[str]:
    """A legend inside the plotting area, or a point of a series drawn with a character marker
    that is not on screen where it lies (covered by a legend, a line, or the axis)."""
    region = getattr(plot, "canvas_region", plot.region)
    rows = [line[region.x:region.right] for line in lines[region.y:region.bottom]]
    box = _box(rows)
    if box is None or not plot.series:
        return []  # nothing drawn yet (an empty plot says so in words, in its empty frame)
    top, left, bottom, right = box
    inside = [row[left + 1:right] for row in rows[top + 1:bottom]]
    found = [f"the legend {s.label!r} is drawn inside the plot" for s in plot.series
             if len(s.label) >= 2 and any(s.label in row for row in inside)]
    x0, x1, y0, y1 = _limits(plot)
    log_x, log_y = getattr(plot, "log_x", False), getattr(plot, "log_y", False)
    height, width = len(inside), right - left - 1
    marker_of = getattr(plot, "marker_of", None) or (
        lambda s: s.marker or MARKERS[plot.series.index(s) % len(MARKERS)])
    markers = {marker_of(s) for s in plot.series} - {"braille", "hd", "fhd", "dot", "-"}
    for series in plot.series:
        if marker_of(series) not in markers:
            continue  # a line of braille dots has no one cell per point
        for x, y in zip(series.xs, series.ys, strict=False):
            col = _cell(x, x0, x1, width, log_x)
            row = height - 1 - _cell(y, y0, y1, height, log_y)
            seen = {inside[r][c] for r in range(row - 1, row + 2) for c in range(col - 1, col + 2)
                    if 0 <= r < height and 0 <= c < len(inside[r])}
            if not (seen & markers) or not (0 <= row < height and 0 <= col < width):
                found.append(f"a point of {series.label!r} at ({x:g}, {y:g}) is not seen")
            elif col < 1 or row > height - 2:  # against an axis line, read as part of it
                found.append(f"a point of {series.label!r} at ({x:g}, {y:g}) sits on an axis")
    return found


def _limits(plot: LinePlot) -> tuple[float, float, float, float]:
    """The plot's axis limits; plotext's own (the data's range) where the plot sets none."""
    limits = getattr(plot, "limits", None)
    if limits is not None:
        return limits
    xs = [x for s in plot.series for x in s.xs]
    ys = [y for s in plot.series for y in s.ys]
    return min(xs), max(xs), min(ys), max(ys)


def _box(rows: list[str]) -> tuple[int, int, int, int] | None:
    for top, row in enumerate(rows):
        if TOP_LEFT in row and TOP_RIGHT in row:
            left, right = row.index(TOP_LEFT), row.rindex(TOP_RIGHT)
            bottom = next((i for i in range(top + 1, len(rows))
                           if len(rows[i]) > left and rows[i][left] == BOTTOM_LEFT), None)
            return None if bottom is None else (top, left, bottom, right)
    return None


def _cell(value: float, low: float, high: float, cells: int, log: bool) -> int:
    if log:
        value, low, high = (math.log10(v) for v in (value, low, high))
    share = (value - low) / (high - low) if high != low else 0.5
    return round(share * (cells - 1))
