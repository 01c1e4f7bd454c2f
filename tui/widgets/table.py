"""A DataTable with vim movement, a cursor that shows without colour, a first column that
stays when the table scrolls right, and a way to refill it without losing the cursor or
changing a column's width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.render import measure
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets._data_table import default_cell_formatter
from textual.widgets.data_table import ColumnKey, RowKey

from tunelab.tui import keys

CURSOR = "▶"  # in the left padding of the cursor's row: the cursor shows without colour


class VimTable(DataTable):
    """The movement keys of tui/keys.py (j/k/h/l, g/G, ctrl+d/ctrl+u) on top of the arrows,
    page keys and the mouse."""

    BINDINGS = keys.bindings("tables and text")

    def __init__(self, screen_enter: bool = False, **kwargs: Any) -> None:
        """`screen_enter`: Enter is the screen's (`open`, shown in its footer); the table's own
        Enter, which would hide it from the footer, steps aside."""
        self.screen_enter = screen_enter
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        # the first column (a row's name or number) stays in view when the table scrolls right
        kwargs.setdefault("fixed_columns", 1)
        super().__init__(**kwargs)
        self._shape: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self._given: dict[str, Sequence[Any]] = {}  # row key -> the cells last given for it
        self._widths: dict[ColumnKey, int] = {}  # the widest each column has been

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor" and self.screen_enter:
            return False
        return super().check_action(action, parameters)

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """A line as DataTable draws it, with CURSOR in the cursor row's first cell of padding."""
        strip = super()._render_line(y, x1, x2, base_style)
        if not self.show_cursor or not self.row_count or (x1 and not self.fixed_columns):
            return strip
        try:
            row_key, line = self._get_offsets(y)
        except LookupError:
            return strip
        if line or row_key == self._header_row_key \
                or self._row_locations.get(row_key) != self.cursor_row:
            return strip
        segments = list(strip)
        if not segments or not segments[0].text.startswith(" "):
            return strip
        first = segments[0]
        return Strip([Segment(CURSOR, (first.style or Style()) + Style(bold=True)),
                      Segment(first.text[1:], first.style), *segments[1:]], strip.cell_length)

    def clear(self, columns: bool = False) -> VimTable:
        self._given = {}  # nothing shown: the next fill compares nothing against stale cells
        super().clear(columns)
        return self

    def action_cursor_right(self) -> None:
        self._step_column(1)

    def action_cursor_left(self) -> None:
        self._step_column(-1)

    def _step_column(self, by: int) -> None:
        """h/l: a column at a time. A row cursor keeps its row and steps its column (the one
        a sort takes) into view, where DataTable would scroll one character."""
        if self.cursor_type != "row":
            super().action_cursor_right() if by > 0 else super().action_cursor_left()
            return
        if not self.columns:
            return
        column = max(0, min(self.cursor_column + by, len(self.columns) - 1))
        self.cursor_coordinate = Coordinate(self.cursor_row, column)
        x, _, width, _ = self._get_column_region(column)
        self.scroll_to_region(Region(x, int(self.scroll_y), width, 1),
                              spacing=self._get_fixed_offset(), animate=False, force=True)
        if self.row_count:  # as a cell cursor would: the screen may say which column it is
            coordinate = self.cursor_coordinate
            self.post_message(self.CellHighlighted(self, self.get_cell_at(coordinate),
                                                   coordinate, self.coordinate_to_cell_key(coordinate)))

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=max(self.row_count - 1, 0))

    def copy_cell(self) -> None:
        """The cell under the cursor to the clipboard (OSC 52, where the terminal has it)."""
        if self.row_count:
            cell = self.get_cell_at(self.cursor_coordinate)
            text = cell.plain if isinstance(cell, Text) else str(cell)
            self.app.copy_to_clipboard(text)
            self.notify(f"copied {text!r} (OSC 52)", timeout=2)

    @property
    def current_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - an empty or shrinking table
            return None

    def fill(self, columns: Sequence[tuple[str, str]], rows: Sequence[tuple[str, Sequence[Any]]],
             widths: dict[str, int] | None = None) -> None:
        """Shows `rows` ((key, cells)) under `columns` ((key, title)); `widths` are columns'
        least widths (room kept for a live cell that grows: no column jumps when it does).

        When the columns and the row keys are those already shown, only the cells that changed
        are updated (a running trial's step and loss): the cursor and scroll stay put and a
        refresh costs little. Otherwise the table is rebuilt and the cursor kept on its row.
        """
        column_keys = tuple(k for k, _ in columns)
        row_keys = tuple(k for k, _ in rows)
        same_rows = row_keys == self._shape[1] or (
            len(row_keys) == len(self._shape[1]) and set(row_keys) == set(self._shape[1]))
        if column_keys == self._shape[0] and same_rows and self.row_count == len(rows):
            updates: dict[str, list[tuple[str, Any]]] = {}
            for key, cells in rows:
                # what this table was last given for the row is what it shows (update_cell
                # stores the cell it is handed); get_row would rebuild the column order per row
                old = self._given.get(key)
                if old is cells:
                    continue  # the very list shown: a row the screen reused as it was
                if old is None:
                    old = self.get_row(key)
                elif len(old) == len(cells) and all(
                        a is b for a, b in zip(cells, old, strict=True)):
                    continue  # the very cells shown: a row reused by the screen
                self._given[key] = cells
                # `is` first: a re-sort hands back the very cells shown, and comparing 20,000
                # of them by content is most of what a re-sort would cost
                changed = [(column, new) for column, new, was in zip(column_keys, cells, old,
                                                                     strict=False)
                           if new is not was and _plain(new) != _plain(was)]
                if changed:
                    updates[key] = changed
            if updates:
                self._update_rows(updates)
            if row_keys != self._shape[1]:  # the same rows in another order: a re-sort
                self._reorder(row_keys)
            return
        keep = self.current_key
        column = self.cursor_column
        for held, have in self.columns.items():  # a column is never narrower than it has been
            self._widths[held] = max(self._widths.get(held, 0), have.content_width)
        self.clear(columns=column_keys != self._shape[0])
        if not self.columns:
            for key, title in columns:
                added = self.columns[self.add_column(title, key=key)]
                added.content_width = max(added.content_width, self._widths.get(added.key, 0),
                                          (widths or {}).get(key, 0))
        self._given = {}
        for key, cells in rows:
            self.add_row(*cells, key=key)
            self._given[key] = cells
        self._shape = (column_keys, row_keys)
        if keep is not None and keep in row_keys:
            self.move_cursor(row=row_keys.index(keep), column=column, animate=False)


    def _update_rows(self, updates: dict[str, list[tuple[str, Any]]]) -> None:
        """Puts new cells in some rows ({row key: [(column key, cell)]}) and redraws what that
        changes alone.

        DataTable.update_cell counts as a change of the whole table: its render caches are keyed
        by one update counter, so the next frame renders every visible cell again (~70 ms for a
        screen of the trials table, where a live refresh changes a few cells of a few rows).
        Here only these rows' cached renders are dropped and only their lines are redrawn. A
        cell wider than its column widens it: every line is put together again, but from the
        cells' cached renders, those of the widened column drawn again; a narrower cell leaves
        the column as wide as it was (a live column does not jitter).
        """
        console = self.app.console
        widened: set[ColumnKey] = set()
        for key, changed in updates.items():
            row = self._data[RowKey(key)]
            for column, value in changed:
                column_key = ColumnKey(column)
                # measured as DataTable measures a cell of a one-line row
                width = measure(console, default_cell_formatter(value, wrap=False, height=1), 1)
                if width > self.columns[column_key].content_width:
                    self.columns[column_key].content_width = width
                    widened.add(column_key)
                row[column_key] = value
        rows = {RowKey(key) for key in updates}
        # the cell renders are keyed (row key, column key, …): drop the changed rows' and the
        # widened columns' (a render is as wide as its column)
        for cached in [k for k in self._cell_render_cache.keys()
                       if k[0] in rows or k[1] in widened]:
            self._cell_render_cache.discard(cached)
        indexes = [i for i in (self._row_locations.get(row_key) for row_key in rows) if i is not None]
        for index in indexes:
            self._row_renderable_cache.discard((self._update_count, index))
        self._line_cache.clear()  # lines are put together from the rows' renders: cheap
        if widened:
            self._row_render_cache.clear()  # every row's line moves right of the column
            self._update_dimensions([])  # the table's virtual width, from the columns'
            self.refresh()
            return
        for line in [k for k in self._row_render_cache.keys() if k[0] in rows]:
            self._row_render_cache.discard(line)
        for index in indexes:
            self.refresh_row(index)

    def _reorder(self, row_keys: tuple[str, ...]) -> None:
        """Puts the rows in this order without rebuilding them, the cursor kept on its row.

        What DataTable.sort does once it has its order (Textual 8): the rows and their rendered
        cells stay, only their positions change. A rebuild of 1,000 rows costs several times more.
        """
        keep = self.current_key
        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(row_keys)})
        self._update_count += 1
        self.refresh()
        self._shape = (self._shape[0], row_keys)
        if keep is not None:
            self.move_cursor(row=row_keys.index(keep), animate=False)


def _plain(cell: Any) -> Any:
    # Styles and spans compare as they are (Style and Span are comparable values): no str()
    return (cell.plain, cell.style, tuple(cell.spans)) if isinstance(cell, Text) else cell
