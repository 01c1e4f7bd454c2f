"""A scrolling text that moves with the same keys as a table (tui/keys.py's "tables and
text"): j/k a line, g/G the ends, ctrl+d/ctrl+u a page, on top of the arrows and page keys."""

from __future__ import annotations

from textual.containers import VerticalScroll

from tunelab.tui import keys


class VimScroll(VerticalScroll):
    """A VerticalScroll that takes the focus and the table's movement keys."""

    BINDINGS = keys.bindings("tables and text")

    def action_cursor_down(self) -> None:
        self.scroll_down()

    def action_cursor_up(self) -> None:
        self.scroll_up()

    def action_cursor_left(self) -> None:
        self.scroll_left()

    def action_cursor_right(self) -> None:
        self.scroll_right()

    def action_scroll_top(self) -> None:
        self.scroll_home(animate=False)

    def action_scroll_bottom(self) -> None:
        self.scroll_end(animate=False)
