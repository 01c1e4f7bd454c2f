"""`?`: the keys of the screen underneath, of the whole app and of moving, in a dialog. Every
line comes from the one table of keys (tui/keys.py), as docs/tui.md does."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tunelab.tui import keys
from tunelab.tui.widgets.scroll import VimScroll


def key_table(under: str | None) -> Table:
    """The keys of screen `under` (a name in keys.SCREENS), then those that work everywhere,
    then those that move in tables and text."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    groups = [("everywhere", "app"), ("in tables and text", "tables and text")]
    if under is not None:
        groups.insert(0, (f"{under} screen", under))
    for n, (title, screen) in enumerate(groups):
        if n:
            table.add_row("", "")
        table.add_row(Text(title, style="bold underline"), "")
        for key in keys.rows(screen):
            if screen == "app" or key.name not in keys.names("app"):
                table.add_row(key.written, keys.does(screen, key))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = keys.bindings("help", back="dismiss")
    AUTO_FOCUS = "#help-box"

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        name = getattr(self.under, "KEYS_OF", None)
        module = __import__(type(self.under).__module__, fromlist=["_"])
        # what the screen is: its first paragraph (the rest is for the people who code it)
        doc = (self.under.__doc__ or module.__doc__ or "").strip().split("\n\n")[0]
        with VimScroll(id="help-box"):
            if doc:
                yield Static(Text(" ".join(doc.split()), style="italic"), id="help-doc")
            yield Static(key_table(name))
            yield Static(Text("esc closes · j k scroll", style="dim"))
