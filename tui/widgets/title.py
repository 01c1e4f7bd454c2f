"""The line at the top of every screen: `tunelab · quickstart · trials`, one style for all.

It shows the screen's `title` and `sub_title` (Textual's own reactives, so a screen sets them
as it would for Textual's Header) after the app's name."""

from __future__ import annotations

from textual.widgets import Static


class ScreenTitle(Static):
    DEFAULT_CSS = """
    ScreenTitle {
        height: 1;
        padding: 0 1;
        background: $primary-background;
        color: $text;
        text-style: bold;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.screen, "title", self._show)
        self.watch(self.screen, "sub_title", self._show)
        self._show()

    def _show(self, _: object = None) -> None:
        parts = [self.app.title, self.screen.title, self.screen.sub_title]
        self.update(" · ".join(p for p in parts if p))
