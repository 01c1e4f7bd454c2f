"""`?`: the keys of the screen underneath and of the whole app, in a dialog."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GLOBAL = [
    ("ctrl+p", "command palette: every action of this screen, open an experiment or trial"),
    (":", "SQL console (read-only)"),
    ("?", "this help"),
    ("escape", "back"),
    ("q / ctrl+q", "quit"),
    ("j k h l g G", "move in tables (arrows, page keys and the mouse work too)"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        name = type(self.under).__name__.removesuffix("Screen").lower() or "screen"
        table.add_row(Text(f"{name} screen", style="bold underline"), "")
        seen = set()
        for binding in getattr(self.under, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description and binding.key not in seen:
                seen.add(binding.key)
                table.add_row(binding.key_display or binding.key, binding.description)
        doc = (self.under.__doc__ or type(self.under).__module__ and
               __import__(type(self.under).__module__, fromlist=["_"]).__doc__ or "")
        table.add_row("", "")
        table.add_row(Text("everywhere", style="bold underline"), "")
        for key, what in GLOBAL:
            table.add_row(key, what)
        with VerticalScroll(id="help-box"):
            if doc:
                yield Static(Text(" ".join(doc.split()), style="italic"), id="help-doc")
            yield Static(table)
            yield Static(Text("escape closes", style="dim"))
